// Best-fit packing at any size: the buffers in a given order, each at the smallest free gap of
// address space that fits it among the buffers already placed that are live at the same time
// (XLA's GlobalDecreasingSizeBestFitHeap's rule), else on top of them. The free gaps are found
// from the overlapping placed buffers only (an IntervalIndex), so a pass costs
// O(sum over buffers of k log n) for k overlapping placed buffers, with O(n) memory: this is the
// packer's fallback where the exact search (packing.h) cannot take an instance.
#pragma once

#include <cstdint>
#include <vector>

namespace mallocgame {

struct BestFitResult {
  std::vector<int64_t> offsets;  // [B]; -1 where a buffer did not fit under the capacity
  int64_t placed = 0;
  int64_t height = 0;  // max(offset + size) over placed buffers
};

// order: a permutation of 0..B-1. capacity: every placement ends at or below it. Throws
// std::invalid_argument for bad input (the same checks as the exact search's, plus the order).
BestFitResult best_fit(const std::vector<int64_t>& sizes, const std::vector<int64_t>& starts,
                       const std::vector<int64_t>& ends, int64_t capacity, int64_t alignment,
                       const std::vector<int64_t>& order);

}  // namespace mallocgame
