// Bindings of the memory game: Instance (the shared problem), Game (the state) and
// BatchedGames (many games stepped in one call, the GIL released). See docs/game.md.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "bindings.h"
#include "convert.h"
#include "games.h"
#include "mallocgame/batched.h"
#include "mallocgame/game.h"
#include "mallocgame/instance.h"

namespace mallocgame::bindings {

namespace {

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
                                        py::handle num_candidates, py::handle objective,
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
  in.objective = mallocgame::parse_objective(str_arg(objective, "objective"));
  in.grid = int_scalar(grid, "grid");
  return std::make_shared<Instance>(std::move(in));
}

std::string game_repr(const Game& g) {
  std::ostringstream os;
  os << "Game(turn=" << g.turn() << "/" << g.instance()->num_buffers()
     << ", objective='" << mallocgame::objective_name(g.instance()->objective()) << "'"
     << ", done=" << (g.done() ? "True" : "False") << ", failed=" << (g.failed() ? "True" : "False")
     << ", return_so_far=" << g.return_so_far() << ")";
  return os.str();
}

}  // namespace

void bind_malloc(py::module_& m) {
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
      .def("observation_layout", [](const Instance& in) { return layout_dict(in.layout()); },
           "dict name -> (start, length) of the observation's sections and scalar features; "
           "'candidates.<feature>' entries are strided (start + k * 4 for candidate k).")
      .def("order",
           [](const Instance& in) {
             return to_numpy(in.order());
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
           [](const Instance& in, py::handle buffer) {
             const int64_t b = int_scalar(buffer, "buffer");
             if (b < 0 || b >= in.num_buffers()) {
               throw py::index_error("buffer " + std::to_string(b) + " out of range");
             }
             const std::vector<int32_t> c = in.conflicts(static_cast<int32_t>(b));
             return to_numpy(std::vector<int64_t>(c.begin(), c.end()));
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
      .def("step", [](Game& g, py::handle action) { return g.step(int_scalar(action, "action")); },
           py::arg("action"),
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
      .def("play_best_fit",
           [](Game& g, py::handle keep) {
             const std::vector<int64_t> k = int_vector(keep, "keep");
             py::gil_scoped_release nogil;
             return g.play_best_fit_keeping(k);
           },
           py::arg("keep"),
           "play_best_fit, except that (objective time) the buffers b with keep[b] == 0 go to "
           "slow memory; keep: one integer (or bool) per buffer.")
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
      .def("is_legal",
           [](const Game& g, py::handle action) { return g.is_legal(int_scalar(action, "action")); },
           py::arg("action"))
      .def_property_readonly("candidate_count",
                             [](const Game& g) { return g.done() ? 0 : static_cast<int>(g.candidate_list().size()); })
      .def("observe", &observe_into<Game>, py::arg("out") = py::none(),
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
  batched.def(py::init([](py::handle games) {
                  return std::make_unique<BatchedGames>(object_list<Game>(games, "games", "Game"));
                }),
              py::arg("games"));
  bind_batch<BatchedGames>(batched, "action",
           "Steps every game that is not done with actions[N] (int32 or int64) and writes "
           "obs[N, obs_size] float32, mask[N, K + 1] bool, rewards[N] float32, done[N] bool. "
           "A done game ignores its action (reward 0). Raises ValueError, stepping nothing, "
           "when an action is illegal.");
}

}  // namespace mallocgame::bindings
