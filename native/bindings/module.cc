// Python bindings of the mallocGame core: module mallocgame._native.
//
// Every input is checked in the bindings or in the core, and every error becomes a Python
// exception (std::invalid_argument -> ValueError); the hot loops run with the GIL released.
// convert.h holds the shared numpy conversions, games.h what the two games' bindings share.
#include <pybind11/pybind11.h>

#include "bindings.h"

PYBIND11_MODULE(_native, m) {
  m.doc() = "mallocGame native core: Instance (the shared problem), Game (the state), "
            "BatchedGames (many games stepped in one call). See docs/game.md.";

  mallocgame::bindings::bind_malloc(m);
  mallocgame::bindings::bind_rank(m);
  mallocgame::bindings::bind_packing(m);
}
