// The numpy <-> C++ conversions every binding shares, and the ValueError messages they raise.
//
// Inputs arrive as arbitrary Python objects: these helpers convert them (or refuse them with a
// ValueError naming the field) before the core sees them; outputs go back as fresh numpy arrays.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

namespace py = pybind11;

static_assert(sizeof(bool) == 1, "numpy bool arrays are written through bool*");

namespace mallocgame::bindings {

// "(3, 4)" / "(5,)": an array's shape as numpy prints it.
std::string shape_of(const py::array& a);
std::string dtype_of(const py::array& a);

// numpy.asarray(obj), which must be 1-D.
py::array as_1d(py::handle obj, const char* name);

// A 1-D array of integers (integer dtype, or floats that hold whole numbers) as int64.
std::vector<int64_t> int_vector(py::handle obj, const char* name);
// A 1-D numeric (integer or float) array as float64.
std::vector<double> float_vector(py::handle obj, const char* name);

// An integer scalar (int, numpy integer, or a float holding a whole number) as int64.
int64_t int_scalar(py::handle obj, const char* name);
// A Python bool (or numpy.bool_); anything else is a ValueError naming the argument.
bool bool_arg(py::handle obj, const char* name);
// A Python str; anything else is a ValueError naming the argument.
std::string str_arg(py::handle obj, const char* name);
// A sequence whose items all are T (bound with a shared_ptr holder); anything else is a
// ValueError naming the argument and the first bad item.
template <typename T>
std::vector<std::shared_ptr<T>> object_list(py::handle obj, const char* name, const char* type) {
  if (!py::isinstance<py::sequence>(obj) || py::isinstance<py::str>(obj)) {
    throw py::value_error(std::string(name) + " must be a list of " + type + ", got " +
                          py::str(py::type::of(obj).attr("__name__")).cast<std::string>());
  }
  std::vector<std::shared_ptr<T>> out;
  const auto seq = py::reinterpret_borrow<py::sequence>(obj);
  for (size_t i = 0; i < seq.size(); ++i) {
    const py::object item = seq[i];
    if (!py::isinstance<T>(item)) {
      throw py::value_error(std::string(name) + "[" + std::to_string(i) + "] must be a " + type +
                            ", got " +
                            py::str(py::type::of(item).attr("__name__")).cast<std::string>());
    }
    out.push_back(item.cast<std::shared_ptr<T>>());
  }
  return out;
}
// A Python exception's type and message, on one line.
std::string one_line(const py::error_already_set& e);
double float_scalar(py::handle obj, const char* name);

// A numeric numpy array of the given number of dimensions (bool, integer or float dtype).
py::array numeric_array(py::handle obj, const char* name, py::ssize_t ndim);

// A copy of an array's elements, in C order, converted to T.
template <typename T>
std::vector<T> flat_copy(const py::array& arr, const char* name) {
  auto cast = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(arr);
  if (!cast) {
    throw py::value_error(std::string(name) + ": cannot convert dtype " + dtype_of(arr) + " to " +
                          py::str(py::dtype::of<T>()).cast<std::string>());
  }
  return std::vector<T>(cast.data(), cast.data() + cast.size());
}

// Checks an output (or input) array handed to the batched calls: dtype, shape, C order.
template <typename T>
T* checked(const py::array& a, const char* name, const std::vector<py::ssize_t>& shape,
           bool writeable) {
  if (!a.dtype().equal(py::dtype::of<T>())) {
    throw py::value_error(std::string(name) + " must have dtype " +
                          py::str(py::dtype::of<T>()).cast<std::string>() + ", got " + dtype_of(a));
  }
  bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
  for (size_t d = 0; ok && d < shape.size(); ++d) ok = a.shape(static_cast<py::ssize_t>(d)) == shape[d];
  if (!ok) {
    std::ostringstream os;
    os << name << " must have shape (";
    for (size_t d = 0; d < shape.size(); ++d) os << (d ? ", " : "") << shape[d];
    os << (shape.size() == 1 ? ",)" : ")") << ", got " << shape_of(a);
    throw py::value_error(os.str());
  }
  if (!(a.flags() & py::array::c_style)) throw py::value_error(std::string(name) + " must be C-contiguous");
  if (writeable && !a.writeable()) throw py::value_error(std::string(name) + " must be writeable");
  return static_cast<T*>(const_cast<void*>(a.data()));
}

// A new int64[n] array holding v (int32 values are widened).
py::array_t<int64_t> to_numpy(const std::vector<int64_t>& v);
py::array_t<int64_t> to_numpy(const std::vector<int32_t>& v);

}  // namespace mallocgame::bindings
