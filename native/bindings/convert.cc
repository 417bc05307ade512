// The shared numpy <-> C++ conversions (convert.h).
#include "convert.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace mallocgame::bindings {

std::string shape_of(const py::array& a) {
  std::ostringstream os;
  os << "(";
  for (py::ssize_t d = 0; d < a.ndim(); ++d) os << (d ? ", " : "") << a.shape(d);
  os << (a.ndim() == 1 ? ",)" : ")");
  return os.str();
}

// The Python exception's type and message on one line (what() would add the traceback).
std::string one_line(const py::error_already_set& e) {
  std::string msg = py::str(e.value()).cast<std::string>();
  for (char& c : msg) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return py::str(e.type().attr("__name__")).cast<std::string>() + ": " + msg;
}

std::string dtype_of(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

py::array as_1d(py::handle obj, const char* name) {
  py::array arr;
  try {
    arr = py::module_::import("numpy").attr("asarray")(obj);
  } catch (py::error_already_set& e) {
    throw py::value_error(std::string(name) + ": not an array: " + one_line(e));
  }
  if (arr.ndim() != 1) {
    throw py::value_error(std::string(name) + " must be a 1-D array, got shape " + shape_of(arr));
  }
  return arr;
}

std::vector<int64_t> int_vector(py::handle obj, const char* name) {
  py::array arr = as_1d(obj, name);
  py::module_ np = py::module_::import("numpy");
  const char kind = arr.dtype().kind();
  if (kind == 'u' && arr.size() > 0 &&
      np.attr("any")(arr.attr("__gt__")(py::int_(std::numeric_limits<int64_t>::max()))).cast<bool>()) {
    throw py::value_error(std::string(name) + " has values beyond the int64 range");
  }
  if (kind == 'f') {
    if (arr.size() > 0) {
      const bool finite = np.attr("all")(np.attr("isfinite")(arr)).cast<bool>();
      const bool whole = finite && np.attr("all")(arr.attr("__eq__")(np.attr("trunc")(arr))).cast<bool>();
      const bool small = finite && np.attr("all")(np.attr("abs")(arr).attr("__le__")(py::float_(4.0e18))).cast<bool>();
      if (!finite || !whole || !small) {
        throw py::value_error(std::string(name) + " must hold whole numbers, got dtype " + dtype_of(arr) +
                              " with fractional, huge or non-finite values");
      }
    }
  } else if (kind != 'i' && kind != 'u') {
    throw py::value_error(std::string(name) + " must be an integer array, got dtype " + dtype_of(arr));
  }
  auto cast = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(arr);
  if (!cast) throw py::error_already_set();
  return std::vector<int64_t>(cast.data(), cast.data() + cast.size());
}

std::vector<double> float_vector(py::handle obj, const char* name) {
  py::array arr = as_1d(obj, name);
  const char kind = arr.dtype().kind();
  if (kind != 'f' && kind != 'i' && kind != 'u') {
    throw py::value_error(std::string(name) + " must be a numeric array, got dtype " + dtype_of(arr));
  }
  auto cast = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(arr);
  if (!cast) throw py::error_already_set();
  return std::vector<double>(cast.data(), cast.data() + cast.size());
}

int64_t int_scalar(py::handle obj, const char* name) {
  if (py::isinstance<py::float_>(obj)) {
    const double v = obj.cast<double>();
    if (!std::isfinite(v) || std::trunc(v) != v || std::fabs(v) >= 9.0e18) {
      throw py::value_error(std::string(name) + " must be a whole number, got " +
                            py::repr(obj).cast<std::string>());
    }
    return static_cast<int64_t>(v);
  }
  PyObject* index = PyNumber_Index(obj.ptr());
  if (!index) {
    PyErr_Clear();
    throw py::value_error(std::string(name) + " must be an integer, got " +
                          py::repr(obj).cast<std::string>());
  }
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(index, &overflow);
  Py_DECREF(index);
  if (overflow != 0) throw py::value_error(std::string(name) + " is beyond the int64 range");
  return static_cast<int64_t>(v);
}

bool bool_arg(py::handle obj, const char* name) {
  if (PyBool_Check(obj.ptr())) return obj.ptr() == Py_True;
  const py::module_ np = py::module_::import("numpy");
  if (py::isinstance(obj, np.attr("bool_"))) return obj.cast<bool>();
  throw py::value_error(std::string(name) + " must be True or False, got " +
                        py::repr(obj).cast<std::string>());
}

std::string str_arg(py::handle obj, const char* name) {
  if (!py::isinstance<py::str>(obj)) {
    throw py::value_error(std::string(name) + " must be a str, got " +
                          py::repr(obj).cast<std::string>());
  }
  return obj.cast<std::string>();
}

double float_scalar(py::handle obj, const char* name) {
  const double v = PyFloat_AsDouble(obj.ptr());
  if (v == -1.0 && PyErr_Occurred()) {
    PyErr_Clear();
    throw py::value_error(std::string(name) + " must be a number, got " + py::repr(obj).cast<std::string>());
  }
  return v;
}

py::array numeric_array(py::handle obj, const char* name, py::ssize_t ndim) {
  py::array arr;
  try {
    arr = py::module_::import("numpy").attr("asarray")(obj);
  } catch (py::error_already_set& e) {
    throw py::value_error(std::string(name) + ": not an array: " + one_line(e));
  }
  const char kind = arr.dtype().kind();
  if (kind != 'f' && kind != 'i' && kind != 'u' && kind != 'b') {
    throw py::value_error(std::string(name) + " must be a numeric array, got dtype " + dtype_of(arr));
  }
  if (arr.ndim() != ndim) {
    throw py::value_error(std::string(name) + " must be a " + std::to_string(ndim) +
                          "-D array, got shape " + shape_of(arr));
  }
  return arr;
}

py::array_t<int64_t> to_numpy(const std::vector<int64_t>& v) {
  py::array_t<int64_t> out(static_cast<py::ssize_t>(v.size()));
  if (!v.empty()) std::memcpy(out.mutable_data(), v.data(), v.size() * sizeof(int64_t));
  return out;
}

py::array_t<int64_t> to_numpy(const std::vector<int32_t>& v) {
  py::array_t<int64_t> out(static_cast<py::ssize_t>(v.size()));
  int64_t* o = out.mutable_data();
  for (size_t i = 0; i < v.size(); ++i) o[i] = v[i];
  return out;
}

}  // namespace mallocgame::bindings
