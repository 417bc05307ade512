// Python bindings of the mallocGame core: module mallocgame._native.
//
// Every input is checked here or in the core, and every error becomes a Python exception
// (std::invalid_argument -> ValueError); the hot loops run with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "mallocgame/batched.h"
#include "mallocgame/game.h"
#include "mallocgame/instance.h"
#include "mallocgame/packing.h"
#include "mallocgame/rank_game.h"

namespace py = pybind11;
using mallocgame::BatchedGames;
using mallocgame::Game;
using mallocgame::Instance;
using mallocgame::InstanceInput;

static_assert(sizeof(bool) == 1, "numpy bool arrays are written through bool*");

namespace {

std::string shape_of(const py::array& a) {
  std::ostringstream os;
  os << "(";
  for (py::ssize_t d = 0; d < a.ndim(); ++d) os << (d ? ", " : "") << a.shape(d);
  os << (a.ndim() == 1 ? ",)" : ")");
  return os.str();
}

std::string dtype_of(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

py::array as_1d(py::handle obj, const char* name) {
  py::array arr;
  try {
    arr = py::module_::import("numpy").attr("asarray")(obj);
  } catch (py::error_already_set& e) {
    throw py::value_error(std::string(name) + ": not an array: " + e.what());
  }
  if (arr.ndim() != 1) {
    throw py::value_error(std::string(name) + " must be a 1-D array, got shape " + shape_of(arr));
  }
  return arr;
}

// A 1-D array of integers (integer dtype, or floats that hold whole numbers) as int64.
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

// An integer scalar (int, numpy integer, or a float holding a whole number) as int64.
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

double float_scalar(py::handle obj, const char* name) {
  const double v = PyFloat_AsDouble(obj.ptr());
  if (v == -1.0 && PyErr_Occurred()) {
    PyErr_Clear();
    throw py::value_error(std::string(name) + " must be a number, got " + py::repr(obj).cast<std::string>());
  }
  return v;
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

py::array_t<int64_t> to_numpy(const std::vector<int64_t>& v) {
  py::array_t<int64_t> out(static_cast<py::ssize_t>(v.size()));
  if (!v.empty()) std::memcpy(out.mutable_data(), v.data(), v.size() * sizeof(int64_t));
  return out;
}

// One value per buffer, by buffer index, from an Instance accessor.
py::array_t<double> per_buffer(const Instance& in, double (Instance::*value)(int32_t) const) {
  py::array_t<double> out(static_cast<py::ssize_t>(in.num_buffers()));
  double* p = out.mutable_data();
  for (int32_t b = 0; b < in.num_buffers(); ++b) p[b] = (in.*value)(b);
  return out;
}

std::shared_ptr<Instance> make_instance(py::handle sizes, py::handle starts, py::handle ends,
                                        py::handle instr_flops, py::handle access_ptr,
                                        py::handle access_buffer, py::handle access_bytes,
                                        py::handle capacity, py::handle alignment,
                                        py::handle fast_bandwidth, py::handle slow_bandwidth,
                                        py::handle peak_flops, py::handle order,
                                        py::handle num_candidates, const std::string& objective,
                                        py::handle grid) {
  InstanceInput in;
  in.sizes = int_vector(sizes, "sizes");
  in.starts = int_vector(starts, "starts");
  in.ends = int_vector(ends, "ends");
  in.instr_flops = float_vector(instr_flops, "instr_flops");
  in.access_ptr = int_vector(access_ptr, "access_ptr");
  in.access_buffer = int_vector(access_buffer, "access_buffer");
  in.access_bytes = float_vector(access_bytes, "access_bytes");
  in.capacity = int_scalar(capacity, "capacity");
  in.alignment = int_scalar(alignment, "alignment");
  in.fast_bandwidth = float_scalar(fast_bandwidth, "fast_bandwidth");
  in.slow_bandwidth = float_scalar(slow_bandwidth, "slow_bandwidth");
  in.peak_flops = float_scalar(peak_flops, "peak_flops");
  in.order = int_vector(order, "order");
  in.num_candidates = int_scalar(num_candidates, "num_candidates");
  in.objective = mallocgame::parse_objective(objective);
  in.grid = int_scalar(grid, "grid");
  return std::make_shared<Instance>(std::move(in));
}

py::array observe_into(Game& g, py::object out) {
  const auto n = static_cast<py::ssize_t>(g.instance()->layout().size);
  py::array arr = out.is_none() ? py::array(py::array_t<float>(n)) : py::array(out);
  float* p = checked<float>(arr, "out", {n}, true);
  g.observe(p);
  return arr;
}

std::string game_repr(const Game& g) {
  std::ostringstream os;
  os << "Game(turn=" << g.turn() << "/" << g.instance()->num_buffers()
     << ", objective='" << mallocgame::objective_name(g.instance()->objective()) << "'"
     << ", done=" << (g.done() ? "True" : "False") << ", failed=" << (g.failed() ? "True" : "False")
     << ", return_so_far=" << g.return_so_far() << ")";
  return os.str();
}

template <class B>
size_t batch_index(const B& b, int64_t i) {
  const auto n = static_cast<int64_t>(b.size());
  if (i < -n || i >= n) {
    throw py::index_error("game index " + std::to_string(i) + " out of range for " + std::to_string(n) +
                          " games");
  }
  return static_cast<size_t>(i < 0 ? i + n : i);
}

// The methods every batch (BatchOf<G>) shares: len, sizes, game(i) / [i], step, observe and reset.
// `move` names an action in the illegal-action error; `step_doc` documents step's arrays.
template <class B, class Cls>
Cls& bind_batch(Cls& cls, const std::string& move, const char* step_doc) {
  cls.def("__len__", &B::size)
      .def_property_readonly("num_actions", &B::num_actions)
      .def_property_readonly("observation_size", &B::observation_size)
      .def("game", [](const B& b, int64_t i) { return b.game(batch_index(b, i)); }, py::arg("i"))
      .def("__getitem__", [](const B& b, int64_t i) { return b.game(batch_index(b, i)); })
      .def("step",
           [move](B& b, const py::array& actions, const py::array& obs, const py::array& mask,
                  const py::array& rewards, const py::array& done) {
             const auto n = static_cast<py::ssize_t>(b.size());
             float* o = checked<float>(obs, "obs", {n, b.observation_size()}, true);
             bool* mk = checked<bool>(mask, "mask", {n, b.num_actions()}, true);
             float* r = checked<float>(rewards, "rewards", {n}, true);
             bool* d = checked<bool>(done, "done", {n}, true);
             int64_t bad = -1;
             int64_t bad_action = 0;
             if (actions.dtype().equal(py::dtype::of<int64_t>())) {
               const int64_t* a = checked<int64_t>(actions, "actions", {n}, false);
               py::gil_scoped_release nogil;
               bad = b.first_illegal(a);
               if (bad >= 0) bad_action = a[bad]; else b.step(a, o, mk, r, d);
             } else {
               const int32_t* a = checked<int32_t>(actions, "actions", {n}, false);
               py::gil_scoped_release nogil;
               bad = b.first_illegal(a);
               if (bad >= 0) bad_action = a[bad]; else b.step(a, o, mk, r, d);
             }
             if (bad >= 0) {
               throw py::value_error(move + " " + std::to_string(bad_action) + " is illegal for game " +
                                     std::to_string(bad) + " (no game was stepped)");
             }
           },
           py::arg("actions"), py::arg("obs"), py::arg("mask"), py::arg("rewards"), py::arg("done"), step_doc)
      .def("observe",
           [](B& b, const py::array& obs, const py::array& mask, const py::array& done) {
             const auto n = static_cast<py::ssize_t>(b.size());
             float* o = checked<float>(obs, "obs", {n, b.observation_size()}, true);
             bool* mk = checked<bool>(mask, "mask", {n, b.num_actions()}, true);
             bool* d = checked<bool>(done, "done", {n}, true);
             py::gil_scoped_release nogil;
             b.observe(o, mk, d);
           },
           py::arg("obs"), py::arg("mask"), py::arg("done"))
      .def("reset",
           [](B& b, py::object indices) {
             if (indices.is_none()) {
               py::gil_scoped_release nogil;
               b.reset_all();
               return;
             }
             std::vector<size_t> idx;
             for (int64_t i : int_vector(indices, "indices")) {
               if (i < 0 || i >= static_cast<int64_t>(b.size())) {
                 throw py::index_error("reset: game index " + std::to_string(i) + " out of range [0, " +
                                       std::to_string(b.size()) + ")");
               }
               idx.push_back(static_cast<size_t>(i));
             }
             py::gil_scoped_release nogil;
             b.reset(idx);
           },
           py::arg("indices") = py::none(), "Resets the given games (all when None).")
      .def("reset_done",
           [](B& b) {
             std::vector<int64_t> out;
             {
               py::gil_scoped_release nogil;
               out = b.reset_done();
             }
             return to_numpy(out);
           },
           "Resets the finished games; returns their indices (int64).");
  return cls;
}

}  // namespace

// Defined at the end: the rank game (RankInstance, RankGame, BatchedRankGames) and the exact
// fit-all packing search (_native.pack).
void bind_rank_game(py::module_& m);
void bind_packing(py::module_& m);

PYBIND11_MODULE(_native, m) {
  m.doc() = "mallocGame native core: Instance (the shared problem), Game (the state), "
            "BatchedGames (many games stepped in one call). See docs/game.md.";

  py::class_<Instance, std::shared_ptr<Instance>>(m, "Instance", R"doc(
An immutable mallocGame problem: buffers, cost model, presentation order (see docs/game.md).

Arrays are copied in and validated; any inconsistency raises ValueError. Shapes: sizes, starts,
ends, order [B] int64; instr_flops [I] float64; access_ptr [I + 1], access_buffer [A] int64;
access_bytes [A] float64.)doc")
      .def(py::init(&make_instance), py::arg("sizes"), py::arg("starts"), py::arg("ends"),
           py::arg("instr_flops"), py::arg("access_ptr"), py::arg("access_buffer"),
           py::arg("access_bytes"), py::arg("capacity"), py::arg("alignment"),
           py::arg("fast_bandwidth"), py::arg("slow_bandwidth"), py::arg("peak_flops"),
           py::arg("order"), py::arg("num_candidates") = 8, py::arg("objective") = "time",
           py::arg("grid") = 16)
      .def_property_readonly("num_buffers", &Instance::num_buffers)
      .def_property_readonly("num_instructions", &Instance::num_instructions)
      .def_property_readonly("capacity", &Instance::capacity)
      .def_property_readonly("alignment", &Instance::alignment)
      .def_property_readonly("num_candidates", &Instance::num_candidates)
      .def_property_readonly("num_actions", &Instance::num_actions)
      .def_property_readonly("objective",
                             [](const Instance& in) { return mallocgame::objective_name(in.objective()); })
      .def_property_readonly("grid", &Instance::grid)
      .def_property_readonly("fast_bandwidth", &Instance::fast_bandwidth)
      .def_property_readonly("slow_bandwidth", &Instance::slow_bandwidth)
      .def_property_readonly("peak_flops", &Instance::peak_flops)
      .def_property_readonly("all_slow_time", &Instance::all_slow_time,
                             "Program time with every buffer in slow memory.")
      .def_property_readonly("lower_bound_time", &Instance::lower_bound_time,
                             "Program time with every buffer fast and unlimited capacity.")
      .def_property_readonly("observation_size", [](const Instance& in) { return in.layout().size; })
      .def_property_readonly("total_bytes", &Instance::total_bytes)
      .def("observation_layout",
           [](const Instance& in) {
             py::dict d;
             for (const auto& e : in.layout().entries()) {
               d[py::str(e.first)] = py::make_tuple(e.second.first, e.second.second);
             }
             return d;
           },
           "dict name -> (start, length) of the observation's sections and scalar features; "
           "'candidates.<feature>' entries are strided (start + k * 4 for candidate k).")
      .def("order",
           [](const Instance& in) {
             return to_numpy(std::vector<int64_t>(in.order().begin(), in.order().end()));
           },
           "The presentation order: turn t decides buffer order()[t].")
      .def("static_benefits", [](const Instance& in) { return per_buffer(in, &Instance::static_benefit); },
           "float64[B]: each buffer's reward going fast while every other buffer is slow.")
      .def("densities", [](const Instance& in) { return per_buffer(in, &Instance::density); },
           "float64[B]: static benefit / (size * duration).")
      .def("density_ranks", [](const Instance& in) { return per_buffer(in, &Instance::density_rank); },
           "float64[B]: the fraction of buffers whose density is strictly below each one's.")
      .def_property_readonly("mean_benefit", &Instance::mean_benefit,
                             "The mean static benefit over all buffers.")
      .def("conflicts",
           [](const Instance& in, int64_t b) {
             if (b < 0 || b >= in.num_buffers()) {
               throw py::index_error("buffer " + std::to_string(b) + " out of range");
             }
             const auto i = static_cast<int32_t>(b);
             return to_numpy(std::vector<int64_t>(in.conflicts_begin(i), in.conflicts_end(i)));
           },
           py::arg("buffer"), "Buffers whose live ranges overlap this one's, by presentation rank.")
      .def("__repr__", [](const Instance& in) {
        std::ostringstream os;
        os << "Instance(num_buffers=" << in.num_buffers() << ", capacity=" << in.capacity()
           << ", alignment=" << in.alignment() << ", num_candidates=" << in.num_candidates()
           << ", objective='" << mallocgame::objective_name(in.objective()) << "')";
        return os.str();
      });

  py::class_<Game, std::shared_ptr<Game>>(m, "Game", R"doc(
The mutable state of one mallocGame over a shared Instance. Turn t decides buffer
instance.order()[t]: action 0 = slow memory, action k in 1..K = candidates()[k - 1].)doc")
      .def(py::init([](std::shared_ptr<Instance> inst) { return std::make_shared<Game>(std::move(inst)); }),
           py::arg("instance"))
      .def_property_readonly("instance",
                             [](const Game& g) { return std::const_pointer_cast<Instance>(g.instance()); })
      .def("clone", &Game::clone, "An independent copy (shares the Instance).")
      .def("__copy__", &Game::clone)
      .def("__deepcopy__", [](const Game& g, py::handle) { return g.clone(); }, py::arg("memo"))
      .def("step", &Game::step, py::arg("action"),
           "Plays an action and returns its reward; ValueError if illegal or the game is over.")
      .def("undo", &Game::undo, "Reverts the last step exactly; ValueError when there is none.")
      .def("reset", &Game::reset)
      .def("replay",
           [](Game& g, py::handle actions) {
             const std::vector<int64_t> a = int_vector(actions, "actions");
             return g.replay(a.data(), a.size());
           },
           py::arg("actions"), "Steps a sequence of actions (all or none); returns their rewards.")
      .def("set_offsets",
           [](Game& g, py::handle offsets) {
             const std::vector<int64_t> o = int_vector(offsets, "offsets");
             g.set_offsets(o.data(), o.size());
           },
           py::arg("offsets"),
           "Sets the state from offsets[B] (>= 0 fast, -1 slow, -2 undecided); the decided "
           "buffers must be the first of the order and every placement feasible.")
      .def("play_greedy", &Game::play_greedy, py::call_guard<py::gil_scoped_release>(),
           "Plays to the end with the best-fit candidate when legal and (objective time) its "
           "reward is > 0, else slow memory; returns the rewards gained.")
      .def("play_best_fit", &Game::play_best_fit, py::call_guard<py::gil_scoped_release>(),
           "Plays to the end with action 1 (best fit) whenever legal, else action 0, whatever "
           "the reward; returns the rewards gained.")
      .def("candidates",
           [](const Game& g) {
             py::array_t<int64_t> out(g.instance()->num_candidates());
             g.write_candidates(out.mutable_data());
             return out;
           },
           "int64[K]: the candidate offsets, best fit first, -1 padded.")
      .def("legal_mask",
           [](const Game& g) {
             py::array_t<bool> out(g.instance()->num_actions());
             g.write_mask(out.mutable_data());
             return out;
           },
           "bool[K + 1]: the legal actions (all False when the game is over).")
      .def("is_legal", &Game::is_legal, py::arg("action"))
      .def_property_readonly("candidate_count",
                             [](const Game& g) { return g.done() ? 0 : static_cast<int>(g.candidate_list().size()); })
      .def("observe", &observe_into, py::arg("out") = py::none(),
           "Writes the observation into out (float32[observation_size]) and returns it; "
           "allocates a new array when out is None.")
      .def("fast_reward", &Game::fast_reward,
           "The reward placing the current buffer in fast memory would earn now.")
      .def_property_readonly("done", &Game::done)
      .def_property_readonly("failed", &Game::failed)
      .def_property_readonly("solved", &Game::solved)
      .def_property_readonly("turn", &Game::turn)
      .def_property_readonly("current_buffer", &Game::current_buffer)
      .def_property_readonly("return_so_far", &Game::return_so_far)
      .def_property_readonly("fast_bytes_placed", &Game::fast_bytes_placed)
      .def_property_readonly("history_size", &Game::history_size)
      .def("offsets", [](const Game& g) { return to_numpy(g.offsets()); },
           "int64[B]: offset per buffer, -1 slow, -2 not decided yet.")
      .def("time", &Game::time, "The program time now (undecided buffers count as slow).")
      .def("__repr__", &game_repr);

  py::class_<BatchedGames> batched(m, "BatchedGames", R"doc(
N games stepped in one call with the GIL released; results go into caller-owned numpy arrays.
The games are shared, not copied; they must agree on num_actions and observation_size.)doc");
  batched.def(py::init<std::vector<std::shared_ptr<Game>>>(), py::arg("games"));
  bind_batch<BatchedGames>(batched, "action",
           "Steps every game that is not done with actions[N] (int32 or int64) and writes "
           "obs[N, obs_size] float32, mask[N, K + 1] bool, rewards[N] float32, done[N] bool. "
           "A done game ignores its action (reward 0). Raises ValueError, stepping nothing, "
           "when an action is illegal.");

  bind_rank_game(m);
  bind_packing(m);
}

// ------------------------------------------------------------------------------- rank game
using mallocgame::BatchedRankGames;
using mallocgame::RankGame;
using mallocgame::RankInput;
using mallocgame::RankInstance;

namespace {

// A numeric numpy array of the given number of dimensions (bool, integer or float dtype).
py::array numeric_array(py::handle obj, const char* name, py::ssize_t ndim) {
  py::array arr;
  try {
    arr = py::module_::import("numpy").attr("asarray")(obj);
  } catch (py::error_already_set& e) {
    throw py::value_error(std::string(name) + ": not an array: " + e.what());
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

template <typename T>
std::vector<T> flat_copy(const py::array& arr, const char* name) {
  auto cast = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(arr);
  if (!cast) {
    throw py::value_error(std::string(name) + ": cannot convert dtype " + dtype_of(arr) + " to " +
                          py::str(py::dtype::of<T>()).cast<std::string>());
  }
  return std::vector<T>(cast.data(), cast.data() + cast.size());
}

std::shared_ptr<RankInstance> make_rank_instance(py::handle cost, py::handle features,
                                                 py::handle part_features, py::handle budget,
                                                 py::handle penalty, py::handle tolerance) {
  py::array c = numeric_array(cost, "cost", 2);
  py::array f = numeric_array(features, "features", 3);
  py::array k = numeric_array(part_features, "part_features", 2);
  const py::ssize_t P = c.shape(0), C = c.shape(1);
  if (f.shape(0) != P || f.shape(1) != C) {
    throw py::value_error("features must have shape (P, C, F) = (" + std::to_string(P) + ", " +
                          std::to_string(C) + ", F) like cost, got " + shape_of(f));
  }
  if (k.shape(0) != P) {
    throw py::value_error("part_features must have shape (P, K) with P = " + std::to_string(P) +
                          " like cost, got " + shape_of(k));
  }
  RankInput in;
  in.num_parts = P;
  in.num_choices = C;
  in.num_features = f.shape(2);
  in.num_part_features = k.shape(1);
  in.cost = flat_copy<double>(c, "cost");
  in.features = flat_copy<float>(f, "features");
  in.part_features = flat_copy<float>(k, "part_features");
  if (!penalty.is_none()) {
    py::array pen = numeric_array(penalty, "penalty", 2);
    if (pen.shape(0) != P || pen.shape(1) != C) {
      throw py::value_error("penalty must have shape (P, C) = (" + std::to_string(P) + ", " +
                            std::to_string(C) + ") like cost, got " + shape_of(pen));
    }
    in.penalty = flat_copy<float>(pen, "penalty");
  }
  in.budget = float_scalar(budget, "budget");
  in.tolerance = float_scalar(tolerance, "tolerance");
  return std::make_shared<RankInstance>(std::move(in));
}

py::array_t<double> rank_table(const RankInstance& in, bool penalty) {
  py::array_t<double> out({static_cast<py::ssize_t>(in.num_parts()), static_cast<py::ssize_t>(in.num_choices())});
  double* o = out.mutable_data();
  for (int32_t p = 0; p < in.num_parts(); ++p) {
    for (int32_t c = 0; c < in.num_choices(); ++c) {
      *o++ = penalty ? in.penalty(p, c) : in.cost(p, c);
    }
  }
  return out;
}

py::array rank_observe_into(const RankGame& g, py::object out) {
  const auto n = static_cast<py::ssize_t>(g.instance()->layout().size);
  py::array arr = out.is_none() ? py::array(py::array_t<float>(n)) : py::array(out);
  float* p = checked<float>(arr, "out", {n}, true);
  g.observe(p);
  return arr;
}

py::array_t<int64_t> rank_choices(const RankGame& g) {
  const auto& ch = g.choices();
  py::array_t<int64_t> out(static_cast<py::ssize_t>(ch.size()));
  int64_t* o = out.mutable_data();
  for (size_t i = 0; i < ch.size(); ++i) o[i] = ch[i];
  return out;
}


}  // namespace

void bind_rank_game(py::module_& m) {
  py::class_<RankInstance, std::shared_ptr<RankInstance>>(m, "RankInstance", R"doc(
The tables of one rank game (immutable, shared by its games; see docs/game.md, "The rank game").

cost float64[P, C] (finite, >= 0): FLOPs of part p at choice c. features float32[P, C, F] and
part_features float32[P, K] (finite): what the observation shows of each choice and part.
penalty float32[P, C] (finite, default zeros): move rewards are -penalty[p, c]. budget: FLOPs.
A choice is legal when the spent cost, its cost and the cheapest completion fit the budget (up
to budget + tolerance * max(budget, full cost)). ValueError names any bad input, and a budget
below the all-cheapest total.)doc")
      .def(py::init(&make_rank_instance), py::arg("cost"), py::arg("features"),
           py::arg("part_features"), py::arg("budget"), py::arg("penalty") = py::none(),
           py::arg("tolerance") = 1e-9)
      .def_property_readonly("num_parts", &RankInstance::num_parts)
      .def_property_readonly("num_choices", &RankInstance::num_choices)
      .def_property_readonly("num_actions", &RankInstance::num_choices)
      .def_property_readonly("num_features", &RankInstance::num_features)
      .def_property_readonly("num_part_features", &RankInstance::num_part_features)
      .def_property_readonly("observation_size", [](const RankInstance& in) { return in.layout().size; })
      .def_property_readonly("budget", &RankInstance::budget)
      .def_property_readonly("tolerance", &RankInstance::tolerance)
      .def_property_readonly("limit", &RankInstance::limit,
                             "The largest total cost within budget: budget + tolerance * max(budget, full_cost).")
      .def_property_readonly("full_cost", &RankInstance::full_cost_raw,
                             "Sum over parts of the dearest choice.")
      .def_property_readonly("min_total", &RankInstance::min_total,
                             "Sum over parts of the cheapest choice.")
      .def("cost", [](const RankInstance& in) { return rank_table(in, false); }, "float64[P, C] (a copy).")
      .def("penalty", [](const RankInstance& in) { return rank_table(in, true); }, "float64[P, C] (a copy).")
      .def("observation_layout",
           [](const RankInstance& in) {
             py::dict d;
             for (const auto& e : in.layout().entries()) {
               d[py::str(e.first)] = py::make_tuple(e.second.first, e.second.second);
             }
             return d;
           },
           "dict name -> (start, length) of the observation's sections and named globals.")
      .def("__repr__", [](const RankInstance& in) {
        std::ostringstream os;
        os.precision(12);
        os << "RankInstance(num_parts=" << in.num_parts() << ", num_choices=" << in.num_choices()
           << ", num_features=" << in.num_features() << ", num_part_features=" << in.num_part_features()
           << ", budget=" << in.budget() << ", full_cost=" << in.full_cost_raw() << ")";
        return os.str();
      });

  py::class_<RankGame, std::shared_ptr<RankGame>>(m, "RankGame", R"doc(
The state of one rank game: move t picks one of C choices for part t. Built from a RankInstance,
or from the tables directly (RankGame(cost, features, part_features, budget, penalty=None)).)doc")
      .def(py::init([](std::shared_ptr<RankInstance> inst) { return std::make_shared<RankGame>(std::move(inst)); }),
           py::arg("instance"))
      .def(py::init([](py::handle cost, py::handle features, py::handle part_features, py::handle budget,
                       py::handle penalty, py::handle tolerance) {
             return std::make_shared<RankGame>(
                 make_rank_instance(cost, features, part_features, budget, penalty, tolerance));
           }),
           py::arg("cost"), py::arg("features"), py::arg("part_features"), py::arg("budget"),
           py::arg("penalty") = py::none(), py::arg("tolerance") = 1e-9)
      .def_property_readonly("instance",
                             [](const RankGame& g) { return std::const_pointer_cast<RankInstance>(g.instance()); })
      .def("clone", &RankGame::clone, "An independent copy (shares the RankInstance).")
      .def("__copy__", &RankGame::clone)
      .def("__deepcopy__", [](const RankGame& g, py::handle) { return g.clone(); }, py::arg("memo"))
      .def("step", &RankGame::step, py::arg("choice"),
           "Picks a choice for the current part; returns its reward (-penalty). ValueError if "
           "illegal, out of range or the game is over.")
      .def("undo", &RankGame::undo, "Reverts the last step exactly; ValueError when there is none.")
      .def("reset", &RankGame::reset)
      .def("replay",
           [](RankGame& g, py::handle choices) {
             const std::vector<int64_t> a = int_vector(choices, "choices");
             return g.replay(a.data(), a.size());
           },
           py::arg("choices"), "Steps a sequence of choices (all or none); returns their rewards.")
      .def("legal_mask",
           [](const RankGame& g) {
             py::array_t<bool> out(g.instance()->num_choices());
             g.write_mask(out.mutable_data());
             return out;
           },
           "bool[C]: the legal choices for the current part (all False when the game is over).")
      .def("is_legal", &RankGame::is_legal, py::arg("choice"))
      .def("observe", &rank_observe_into, py::arg("out") = py::none(),
           "Writes the observation into out (float32[observation_size]) and returns it.")
      .def("choices", &rank_choices, "int64[P]: the choice index per part, -1 while undecided.")
      .def_property_readonly("done", &RankGame::done)
      .def_property_readonly("turn", &RankGame::turn)
      .def_property_readonly("moves_left", &RankGame::moves_left)
      .def_property_readonly("spent", &RankGame::spent, "FLOPs of the choices made so far.")
      .def_property_readonly("slack", &RankGame::slack,
                             "budget - spent - cheapest completion of the remaining parts.")
      .def_property_readonly("return_so_far", &RankGame::return_so_far)
      .def_property_readonly("history_size", &RankGame::history_size)
      .def("__repr__", [](const RankGame& g) {
        std::ostringstream os;
        os << "RankGame(turn=" << g.turn() << "/" << g.instance()->num_parts() << ", spent=" << g.spent()
           << ", budget=" << g.instance()->budget() << ", done=" << (g.done() ? "True" : "False")
           << ", return_so_far=" << g.return_so_far() << ")";
        return os.str();
      });

  py::class_<BatchedRankGames> rank_batched(m, "BatchedRankGames", R"doc(
N rank games stepped in one call with the GIL released; results go into caller-owned numpy
arrays. The games are shared, not copied; they must agree on C, F and K (not on P).)doc");
  rank_batched.def(py::init<std::vector<std::shared_ptr<RankGame>>>(), py::arg("games"));
  bind_batch<BatchedRankGames>(rank_batched, "choice",
           "Steps every game that is not done with actions[N] (int32 or int64) and writes "
           "obs[N, obs_size] float32, mask[N, C] bool, rewards[N] float32, done[N] bool. A done "
           "game ignores its action (reward 0). ValueError, stepping nothing, on an illegal action.")
      .def("moves_left",
           [](const BatchedRankGames& b) {
             py::array_t<int32_t> out(static_cast<py::ssize_t>(b.size()));
             b.moves_left(out.mutable_data());
             return out;
           },
           "int32[N]: parts left to decide in each game (0 when done).")
      .def("choices",
           [](const BatchedRankGames& b) {
             size_t width = 0;
             for (size_t i = 0; i < b.size(); ++i) {
               width = std::max(width, static_cast<size_t>(b.game(i)->instance()->num_parts()));
             }
             py::array_t<int64_t> out({static_cast<py::ssize_t>(b.size()), static_cast<py::ssize_t>(width)});
             b.write_choices(out.mutable_data(), width);
             return out;
           },
           "int64[N, max P]: each game's choices, -1 while undecided and past its own P.");
}

// ------------------------------------------------------------------------------- packing
// Python binding of the exact fit-all packing search: mallocgame._native.pack(...).
//
// Every input is converted and checked here or in the core; bad input raises ValueError
// (std::invalid_argument) naming the field. The search runs with the GIL released.

namespace {

// Array and scalar fields convert as the games' do (int_vector, float_vector, int_scalar);
// a bool where an integer belongs is refused here.
int64_t packing_int(py::handle obj, const char* name) {
  if (py::isinstance<py::bool_>(obj)) {
    throw py::value_error(std::string(name) + " must be an integer, got a bool");
  }
  return int_scalar(obj, name);
}

std::vector<std::string> packing_heuristics(py::handle obj) {
  std::vector<std::string> out;
  if (obj.is_none()) return out;
  if (py::isinstance<py::str>(obj)) {
    out.push_back(obj.cast<std::string>());
    return out;
  }
  if (!py::isinstance<py::sequence>(obj)) {
    throw py::value_error("heuristics must be None, a string or a sequence of strings, got " +
                          py::repr(obj).cast<std::string>());
  }
  for (py::handle h : obj) {
    if (!py::isinstance<py::str>(h)) {
      throw py::value_error("heuristics must hold strings, got " + py::repr(h).cast<std::string>());
    }
    out.push_back(h.cast<std::string>());
  }
  if (out.empty()) throw py::value_error("heuristics is empty (pass None for the defaults)");
  return out;
}

py::array_t<int64_t> packing_numpy(const std::vector<int64_t>& v) {
  py::array_t<int64_t> out(static_cast<py::ssize_t>(v.size()));
  if (!v.empty()) std::memcpy(out.mutable_data(), v.data(), v.size() * sizeof(int64_t));
  return out;
}

py::dict run_pack(py::handle sizes, py::handle starts, py::handle ends, py::handle capacity,
                  py::handle alignment, py::handle time_limit, py::handle node_limit, py::handle priority,
                  py::handle heuristics, bool canonical_only, bool section_inference, bool monotonic_floor,
                  bool check_dominance, bool hatless_pruning, bool dynamic_ordering,
                  bool dynamic_decomposition) {
  mallocgame::PackInput in;
  in.sizes = int_vector(sizes, "sizes");
  in.starts = int_vector(starts, "starts");
  in.ends = int_vector(ends, "ends");
  in.capacity = packing_int(capacity, "capacity");
  in.alignment = packing_int(alignment, "alignment");
  if (!time_limit.is_none()) {
    const double t = PyFloat_AsDouble(time_limit.ptr());
    if (t == -1.0 && PyErr_Occurred()) {
      PyErr_Clear();
      throw py::value_error("time_limit must be a number or None, got " + py::repr(time_limit).cast<std::string>());
    }
    if (std::isnan(t) || t < 0) {
      throw py::value_error("time_limit must be >= 0 (or None for no limit), got " +
                            py::repr(time_limit).cast<std::string>());
    }
    in.time_limit_s = t;  // inf: no limit
  }
  if (!node_limit.is_none()) {
    in.node_limit = packing_int(node_limit, "node_limit");
    if (in.node_limit < 0) throw py::value_error("node_limit must be >= 0 (or None for no limit)");
  }
  if (!priority.is_none()) in.priority = float_vector(priority, "priority");
  in.heuristics = packing_heuristics(heuristics);
  in.options.canonical_only = canonical_only;
  in.options.section_inference = section_inference;
  in.options.monotonic_floor = monotonic_floor;
  in.options.check_dominance = check_dominance;
  in.options.hatless_pruning = hatless_pruning;
  in.options.dynamic_ordering = dynamic_ordering;
  in.options.dynamic_decomposition = dynamic_decomposition;
  mallocgame::check_pack_input(in);  // raises ValueError before the GIL is let go
  mallocgame::PackResult r;
  {
    py::gil_scoped_release nogil;
    r = mallocgame::pack(in);
  }
  py::dict d;
  d["status"] = mallocgame::pack_status_name(r.status);
  d["offsets"] = packing_numpy(r.offsets);
  d["placed"] = r.placed;
  d["nodes"] = r.nodes;
  d["backtracks"] = r.backtracks;
  d["rounds"] = r.rounds;
  d["sections"] = r.sections;
  d["peak_live"] = r.peak_live;
  d["height"] = r.height;
  d["wall_s"] = r.wall_s;
  d["heuristic"] = r.heuristic;
  return d;
}

}  // namespace

void bind_packing(py::module_& m) {
  m.def("pack", &run_pack, py::arg("sizes"), py::arg("starts"), py::arg("ends"), py::arg("capacity"),
        py::arg("alignment") = 1, py::kw_only(), py::arg("time_limit") = py::none(),
        py::arg("node_limit") = py::none(), py::arg("priority") = py::none(),
        py::arg("heuristics") = py::none(), py::arg("canonical_only") = true,
        py::arg("section_inference") = true, py::arg("monotonic_floor") = true,
        py::arg("check_dominance") = true, py::arg("hatless_pruning") = true,
        py::arg("dynamic_ordering") = true, py::arg("dynamic_decomposition") = true,
        R"doc(
Exact fit-all packing search (minimalloc's ideas, see native/include/mallocgame/packing.h):
do all buffers (live on [starts, ends), sizes bytes) fit in [0, capacity) at offsets that are
multiples of alignment, with no two live-together buffers overlapping?

time_limit: seconds (None: none); node_limit: search nodes (None: none). priority: float[B],
higher first among buffers of equal minimum offset, used by the heuristic key 'P'.
heuristics: static preorders tried round robin, each a string of keys (W width, A area,
T section total, Z size, C sections, O conflicts, L start, U end, P priority); default
("WAT", "TAW", "TWA"). The remaining flags switch single inference / pruning rules off.

Returns a dict: status ('solved' | 'infeasible' | 'timeout' | 'node_limit'), offsets (int64[B];
the packing when solved, else the largest partial packing met, -1 unplaced), placed, nodes,
backtracks, rounds, sections, peak_live (a lower bound on any packing's height), height,
wall_s, heuristic (the one that finished). The GIL is released during the search.)doc");
}
