// What the two games' bindings share (malloc.cc, rank.cc): observing into an optional array,
// the observation layout as a dict, and the methods of a batch of games (BatchOf<G>).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "convert.h"

namespace mallocgame::bindings {

// Writes g's observation into out (float32[observation_size]), or a new array when out is None.
template <class G>
py::array observe_into(G& g, py::object out) {
  const auto n = static_cast<py::ssize_t>(g.instance()->layout().size);
  py::array arr = out.is_none() ? py::array(py::array_t<float>(n)) : py::array(out);
  float* p = checked<float>(arr, "out", {n}, true);
  g.observe(p);
  return arr;
}

// dict name -> (start, length) of an observation layout's entries.
template <class Layout>
py::dict layout_dict(const Layout& layout) {
  py::dict d;
  for (const auto& e : layout.entries()) {
    d[py::str(e.first)] = py::make_tuple(e.second.first, e.second.second);
  }
  return d;
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

}  // namespace mallocgame::bindings
