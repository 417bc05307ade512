// IntervalIndex: a subset of an instance's live ranges that answers "which of the active
// buffers are live at some position of [s, e)" in O((k + 1) log n) for k answers, with
// O(log n) activation and deactivation (exact undo for search), and O(n) memory.
//
// The buffers sorted by (start, index) are the leaves of a perfect binary tree. The static part
// (IntervalLayout, shared by every index over the same buffers) holds each node's smallest
// start; the dynamic part (IntervalIndex, copied with a Game) holds each node's largest end over
// its active leaves. A query descends only into nodes whose ranges can overlap [s, e): some
// active leaf ends after s, and the leftmost leaf starts before e. This is what replaces
// precomputed per-buffer conflict lists, which grow with the square of the number of buffers
// on programs whose weights live across the whole schedule.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <numeric>
#include <vector>

namespace mallocgame {

class IntervalLayout {
 public:
  IntervalLayout(const std::vector<int64_t>& starts, const std::vector<int64_t>& ends)
      : start_(starts), end_(ends) {
    const auto n = static_cast<int32_t>(starts.size());
    leaves_ = 1;
    while (leaves_ < n) leaves_ *= 2;
    std::vector<int32_t> by_start(static_cast<size_t>(n));
    std::iota(by_start.begin(), by_start.end(), 0);
    std::sort(by_start.begin(), by_start.end(), [&](int32_t x, int32_t y) {
      return starts[x] != starts[y] ? starts[x] < starts[y] : x < y;
    });
    buffer_at_.assign(static_cast<size_t>(leaves_), -1);
    leaf_of_.assign(static_cast<size_t>(n), 0);
    first_start_.assign(2 * static_cast<size_t>(leaves_), kNoStart);
    for (int32_t p = 0; p < n; ++p) {
      buffer_at_[p] = by_start[p];
      leaf_of_[by_start[p]] = p;
      first_start_[leaves_ + p] = starts[by_start[p]];
    }
    for (int32_t v = leaves_ - 1; v >= 1; --v) first_start_[v] = first_start_[2 * v];
  }

  int32_t num_buffers() const { return static_cast<int32_t>(leaf_of_.size()); }
  int32_t leaves() const { return leaves_; }
  int32_t leaf_of(int32_t b) const { return leaf_of_[b]; }
  int32_t buffer_at(int32_t leaf) const { return buffer_at_[leaf]; }
  int64_t first_start(int32_t node) const { return first_start_[node]; }
  // The first leaf whose buffer starts at or after x (num_buffers() when none does).
  int32_t first_leaf_from(int64_t x) const {
    const auto* leaf0 = first_start_.data() + leaves_;
    return static_cast<int32_t>(std::lower_bound(leaf0, leaf0 + num_buffers(), x) - leaf0);
  }
  int64_t start(int32_t b) const { return start_[b]; }
  int64_t end(int32_t b) const { return end_[b]; }

  static constexpr int64_t kNoStart = std::numeric_limits<int64_t>::max();

 private:
  int32_t leaves_ = 1;
  std::vector<int64_t> start_, end_;
  std::vector<int32_t> buffer_at_;    // [leaves]: the buffer at each leaf, -1 past the last
  std::vector<int32_t> leaf_of_;      // [B]
  std::vector<int64_t> first_start_;  // [2 * leaves]: start of the node's leftmost leaf
};

class IntervalIndex {
 public:
  static constexpr int64_t kNone = std::numeric_limits<int64_t>::min();

  IntervalIndex() = default;
  IntervalIndex(std::shared_ptr<const IntervalLayout> layout, bool all_active)
      : layout_(std::move(layout)) {
    reset(all_active);
  }

  // Every buffer active (all_active) or none.
  void reset(bool all_active) {
    const int32_t leaves = layout_->leaves();
    max_end_.assign(2 * static_cast<size_t>(leaves), kNone);
    if (!all_active) return;
    for (int32_t b = 0; b < layout_->num_buffers(); ++b) {
      max_end_[leaves + layout_->leaf_of(b)] = layout_->end(b);
    }
    for (int32_t v = leaves - 1; v >= 1; --v) {
      max_end_[v] = std::max(max_end_[2 * v], max_end_[2 * v + 1]);
    }
  }

  void activate(int32_t b) { set(b, layout_->end(b)); }
  bool active_leaf(int32_t leaf) const {
    return max_end_[static_cast<size_t>(layout_->leaves() + leaf)] != kNone;
  }
  void deactivate(int32_t b) { set(b, kNone); }

  // Calls f(buffer) for every active buffer whose live range [start, end) meets [s, e), in
  // ascending (start, index) order.
  template <typename F>
  void for_each_overlap(int64_t s, int64_t e, F&& f) const {
    for_each_overlap_leaf(s, e, [&](int32_t leaf) { f(layout_->buffer_at(leaf)); });
  }

  // The same, calling f(leaf) with the buffer's leaf position (IntervalLayout::leaf_of), so
  // that a caller can keep data per leaf and read it in order.
  template <typename F>
  void for_each_overlap_leaf(int64_t s, int64_t e, F&& f) const {
    const int32_t leaves = layout_->leaves();
    int32_t stack[2 * 32 + 2];
    int sp = 0;
    stack[sp++] = 1;
    while (sp > 0) {
      const int32_t v = stack[--sp];
      if (max_end_[v] <= s || layout_->first_start(v) >= e) continue;
      if (v >= leaves) {
        f(v - leaves);
        continue;
      }
      stack[sp++] = 2 * v + 1;
      stack[sp++] = 2 * v;
    }
  }

 private:
  void set(int32_t b, int64_t value) {
    int32_t v = layout_->leaves() + layout_->leaf_of(b);
    max_end_[v] = value;
    for (v >>= 1; v >= 1; v >>= 1) {
      const int64_t m = std::max(max_end_[2 * v], max_end_[2 * v + 1]);
      if (m == max_end_[v]) break;  // the ancestors are unchanged too
      max_end_[v] = m;
    }
  }

  std::shared_ptr<const IntervalLayout> layout_;
  std::vector<int64_t> max_end_;  // [2 * leaves]: largest end over the node's active leaves
};

}  // namespace mallocgame
