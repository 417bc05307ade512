// The parts of module mallocgame._native, each bound by its own file (module.cc calls them in
// this order: a signature names a class by its Python name only once that class is bound).
#pragma once

#include <pybind11/pybind11.h>

namespace mallocgame::bindings {

void bind_malloc(pybind11::module_& m);   // malloc.cc: Instance, Game, BatchedGames
void bind_rank(pybind11::module_& m);     // rank.cc: RankInstance, RankGame, BatchedRankGames
void bind_packing(pybind11::module_& m);  // packing.cc: pack

}  // namespace mallocgame::bindings
