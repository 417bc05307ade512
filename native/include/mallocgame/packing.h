// An exact search for the fit-all packing problem (minimalloc's problem): do all buffers fit
// in [0, capacity) so that no two buffers that are live together overlap in address, and where?
//
// The algorithm follows the ideas of MiniMalloc (M. D. Moffitt, "MiniMalloc: A Lightweight
// Memory Allocator for Hardware-Accelerated Machine Learning", ASPLOS 2023); the code is ours.
//
// * Canonical solutions. Every feasible packing can be pushed down until each buffer rests at
//   the lowest (aligned) offset above the buffers below it that it conflicts with. Listing the
//   buffers of such a packing by ascending offset, each one sits at its "minimum offset": the
//   aligned top of the highest already listed buffer it conflicts with. So a depth-first search
//   that, at each step, places some unplaced buffer at its minimum offset, with offsets
//   non-decreasing along a branch (ties broken by a static preorder), visits every packing up
//   to this normal form, and visits each one once.
// * Sections. A section is the set of buffers live just before one of the distinct end
//   positions; every conflicting pair shares a section and every section is a clique. The
//   buffers of a section still unplaced will stack above max(the offset of the last placed
//   buffer, their least minimum offset) (monotonic floor, unallocated floor), so the search
//   prunes when that floor plus their summed sizes exceeds the capacity (section inference).
// * Dominance. A buffer at offset o >= min over unplaced j of (minoff_j + size_j) is pruned:
//   j fits below o for ever, so the packing with j placed first is found on another branch.
//   Hatless pruning: when a placed buffer conflicts with no unplaced buffer and its subtree
//   failed, the node fails (it can always be placed first).
// * Ordering. Candidates are tried by ascending minimum offset, ties by a static preorder (the
//   heuristics below, or an external priority per buffer). Several preorders are tried round
//   robin with a node budget that doubles every round (minimalloc's WAT, TAW, TWA by default).
// * Decomposition. When no unplaced buffer spans the boundary between two adjacent sections
//   any more, the two sides are independent and are solved one after the other.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mallocgame {

// Switches for the inference and pruning rules (for ablations and tests; all on by default).
// Rules that are only sound for canonical search (monotonic floor, dominance, hatless pruning)
// are ignored when canonical_only is off.
struct PackOptions {
  bool canonical_only = true;
  bool section_inference = true;
  bool monotonic_floor = true;
  bool check_dominance = true;
  bool hatless_pruning = true;
  bool dynamic_ordering = true;
  bool dynamic_decomposition = true;
};

struct PackInput {
  std::vector<int64_t> sizes, starts, ends;  // [B]; live range [start, end)
  int64_t capacity = 0;
  int64_t alignment = 1;  // every offset is a multiple of it
  // Optional [B] priority (higher is tried first among buffers of equal minimum offset) for
  // the heuristic letter 'P'. Empty when not given.
  std::vector<double> priority;
  // Static preorders, each a string of keys compared in turn, larger first:
  // W width (end - start), A area (size * width), T the largest unplaced total of the
  // buffer's sections, Z size, C sections spanned, O conflicts, L start, U end, P priority.
  // Ties: lower buffer index. Default {"WAT", "TAW", "TWA"} (minimalloc's).
  std::vector<std::string> heuristics;
  double time_limit_s = -1.0;  // < 0: no limit
  int64_t node_limit = -1;     // < 0: no limit (nodes over all heuristics and rounds)
  PackOptions options;
};

enum class PackStatus { kSolved, kInfeasible, kTimeout, kNodeLimit };
const char* pack_status_name(PackStatus status);

struct PackResult {
  PackStatus status = PackStatus::kTimeout;
  // [B]: the packing when solved; otherwise the largest partial packing met during the search
  // (feasible as far as it goes), -1 for unplaced buffers.
  std::vector<int64_t> offsets;
  int64_t placed = 0;       // buffers with an offset
  int64_t nodes = 0;        // search nodes over all rounds and heuristics
  int64_t backtracks = 0;   // nodes whose every branch failed
  int64_t rounds = 0;       // round-robin rounds started (1 with a single heuristic)
  int64_t sections = 0;     // number of sections
  int64_t peak_live = 0;    // largest section total: no packing needs less than this
  int64_t height = 0;       // max(offset + size) over placed buffers
  double wall_s = 0.0;
  std::string heuristic;    // the heuristic that solved or proved infeasibility ("" otherwise)
};

// Checks the input; throws std::invalid_argument naming the field and the first bad entry.
void check_pack_input(const PackInput& in);

// Runs the search (on a thread of its own with a stack sized for the recursion). Throws
// std::invalid_argument for bad input; never returns an invalid packing as solved (the
// packing is checked before it is returned; std::logic_error if that ever failed).
PackResult pack(const PackInput& in);

}  // namespace mallocgame
