// Bindings of the fit-all packers: the exact search mallocgame._native.pack(...) and the
// best-fit pass mallocgame._native.best_fit(...) that scales to any size.
//
// Every input is converted and checked here or in the core; bad input raises ValueError
// (std::invalid_argument) naming the field. The search runs with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "bindings.h"
#include "convert.h"
#include "mallocgame/best_fit.h"
#include "mallocgame/packing.h"

namespace mallocgame::bindings {

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

py::dict run_pack(py::handle sizes, py::handle starts, py::handle ends, py::handle capacity,
                  py::handle alignment, py::handle time_limit, py::handle node_limit, py::handle priority,
                  py::handle heuristics, py::handle canonical_only, py::handle section_inference, py::handle monotonic_floor,
                  py::handle check_dominance, py::handle hatless_pruning, py::handle dynamic_ordering,
                  py::handle dynamic_decomposition) {
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
  in.options.canonical_only = bool_arg(canonical_only, "canonical_only");
  in.options.section_inference = bool_arg(section_inference, "section_inference");
  in.options.monotonic_floor = bool_arg(monotonic_floor, "monotonic_floor");
  in.options.check_dominance = bool_arg(check_dominance, "check_dominance");
  in.options.hatless_pruning = bool_arg(hatless_pruning, "hatless_pruning");
  in.options.dynamic_ordering = bool_arg(dynamic_ordering, "dynamic_ordering");
  in.options.dynamic_decomposition = bool_arg(dynamic_decomposition, "dynamic_decomposition");
  mallocgame::check_pack_input(in);  // raises ValueError before the GIL is let go
  mallocgame::PackResult r;
  {
    py::gil_scoped_release nogil;
    r = mallocgame::pack(in);
  }
  py::dict d;
  d["status"] = mallocgame::pack_status_name(r.status);
  d["offsets"] = to_numpy(r.offsets);
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

py::dict run_best_fit(py::handle sizes, py::handle starts, py::handle ends, py::handle capacity,
                      py::handle order, py::handle alignment) {
  const std::vector<int64_t> sz = int_vector(sizes, "sizes");
  const std::vector<int64_t> st = int_vector(starts, "starts");
  const std::vector<int64_t> en = int_vector(ends, "ends");
  const std::vector<int64_t> ord = int_vector(order, "order");
  const int64_t cap = packing_int(capacity, "capacity");
  const int64_t align = packing_int(alignment, "alignment");
  mallocgame::BestFitResult r;
  {
    py::gil_scoped_release nogil;
    r = mallocgame::best_fit(sz, st, en, cap, align, ord);
  }
  py::dict d;
  d["offsets"] = to_numpy(r.offsets);
  d["placed"] = r.placed;
  d["height"] = r.height;
  return d;
}

}  // namespace

void bind_packing(py::module_& m) {
  m.def("best_fit", &run_best_fit, py::arg("sizes"), py::arg("starts"), py::arg("ends"),
        py::arg("capacity"), py::arg("order"), py::arg("alignment") = 1,
        R"doc(
One best-fit pass (XLA's GlobalDecreasingSizeBestFitHeap rule, at any size; see
native/include/mallocgame/best_fit.h): the buffers in order (a permutation of 0..B-1), each at
the smallest free gap among the buffers live with it that fits, else on top of them; a buffer
that would end above capacity is left unplaced. Returns a dict: offsets (int64[B], -1
unplaced), placed, height (max offset + size). Bad input raises ValueError naming the field.
The GIL is released during the pass.)doc");

  m.def("pack", &run_pack, py::arg("sizes"), py::arg("starts"), py::arg("ends"), py::arg("capacity"),
        py::arg("alignment") = 1, py::kw_only(), py::arg("time_limit") = py::none(),
        py::arg("node_limit") = py::none(), py::arg("priority") = py::none(),
        py::arg("heuristics") = py::none(), py::arg("canonical_only") = py::bool_(true),
        py::arg("section_inference") = py::bool_(true), py::arg("monotonic_floor") = py::bool_(true),
        py::arg("check_dominance") = py::bool_(true), py::arg("hatless_pruning") = py::bool_(true),
        py::arg("dynamic_ordering") = py::bool_(true), py::arg("dynamic_decomposition") = py::bool_(true),
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

}  // namespace mallocgame::bindings
