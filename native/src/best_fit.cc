// Best fit at any size (see best_fit.h).
#include "mallocgame/best_fit.h"

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

#include "mallocgame/interval_index.h"
#include "mallocgame/packing.h"
#include "mallocgame/sort_ranges.h"

namespace mallocgame {
namespace {

int64_t align_up(int64_t v, int64_t a) {
  const int64_t r = v % a;
  return r == 0 ? v : v + (a - r);
}

}  // namespace

BestFitResult best_fit(const std::vector<int64_t>& sizes, const std::vector<int64_t>& starts,
                       const std::vector<int64_t>& ends, int64_t capacity, int64_t alignment,
                       const std::vector<int64_t>& order) {
  PackInput check;
  check.sizes = sizes;
  check.starts = starts;
  check.ends = ends;
  check.capacity = capacity;
  check.alignment = alignment;
  check_pack_input(check);
  const auto n = static_cast<int32_t>(sizes.size());
  if (order.size() != sizes.size()) {
    throw std::invalid_argument("order has " + std::to_string(order.size()) +
                                " entries, expected " + std::to_string(n));
  }
  std::vector<char> seen(static_cast<size_t>(n), 0);
  for (size_t t = 0; t < order.size(); ++t) {
    const int64_t b = order[t];
    if (b < 0 || b >= n || seen[static_cast<size_t>(b)]) {
      throw std::invalid_argument("order[" + std::to_string(t) + "] = " + std::to_string(b) +
                                  " is out of range or repeated: order must be a permutation of "
                                  "0.." + std::to_string(n - 1));
    }
    seen[static_cast<size_t>(b)] = 1;
  }

  auto layout = std::make_shared<const IntervalLayout>(starts, ends);
  IntervalIndex placed(layout, false);
  BestFitResult out;
  out.offsets.assign(static_cast<size_t>(n), -1);
  std::vector<std::pair<int64_t, int64_t>> ranges, scratch;
  int64_t reach = 0;  // an upper bound on every top so far: the radix sort's key range
  for (const int64_t bb : order) {
    const auto b = static_cast<int32_t>(bb);
    const int64_t size = sizes[b];
    ranges.clear();
    placed.for_each_overlap(starts[b], ends[b], [&](int32_t p) {
      ranges.emplace_back(out.offsets[p], out.offsets[p] + sizes[p]);
    });
    sort_by_offset(ranges, scratch, reach);
    // The smallest interior gap that fits (ties: the lowest), else the aligned top.
    int64_t best = -1, best_gap = 0, cursor = 0;
    for (const auto& r : ranges) {
      if (r.first > cursor) {
        const int64_t off = align_up(cursor, alignment);
        const int64_t gap = r.first - cursor;
        if (off + size <= r.first && (best < 0 || gap < best_gap)) best = off, best_gap = gap;
      }
      cursor = std::max(cursor, r.second);
    }
    if (best < 0) best = align_up(cursor, alignment);
    if (best > capacity - size) continue;  // does not fit under the capacity: left unplaced
    out.offsets[b] = best;
    out.height = std::max(out.height, best + size);
    reach = out.height;
    ++out.placed;
    placed.activate(b);
  }
  return out;
}

}  // namespace mallocgame
