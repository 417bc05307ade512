// Bindings of the rank game: RankInstance (the tables), RankGame (the state) and
// BatchedRankGames (many games stepped in one call, the GIL released). See docs/game.md,
// "The rank game".
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "bindings.h"
#include "convert.h"
#include "games.h"
#include "mallocgame/rank_game.h"

namespace mallocgame::bindings {

namespace {

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

}  // namespace

void bind_rank(py::module_& m) {
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
      .def("observation_layout", [](const RankInstance& in) { return layout_dict(in.layout()); },
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
      .def("step", [](RankGame& g, py::handle c) { return g.step(int_scalar(c, "choice")); },
           py::arg("choice"),
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
      .def("is_legal",
           [](const RankGame& g, py::handle c) { return g.is_legal(int_scalar(c, "choice")); },
           py::arg("choice"))
      .def("observe", &observe_into<const RankGame>, py::arg("out") = py::none(),
           "Writes the observation into out (float32[observation_size]) and returns it.")
      .def("choices", [](const RankGame& g) { return to_numpy(g.choices()); },
           "int64[P]: the choice index per part, -1 while undecided.")
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
  rank_batched.def(py::init([](py::handle games) {
                       return std::make_unique<BatchedRankGames>(
                           object_list<RankGame>(games, "games", "RankGame"));
                     }),
                   py::arg("games"));
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

}  // namespace mallocgame::bindings
