// RangeMax: int64 values over positions [0, n), all 0 at first, with "add d to [l, r)" and
// "the largest value on [l, r)" in O(log n) each, and the values of a range in order (a segment tree whose nodes hold a pending add
// and the largest value below them, adds included). The Game keeps the fast bytes live on each
// schedule segment in one (and only there), so that a move updates them in O(log n) and a turn
// can tell in O(log n) that a buffer cannot fit anywhere (its size is above the capacity minus
// the most bytes in use over its live range) without walking the buffers live with it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace mallocgame {

class RangeMax {
 public:
  void reset(int32_t n) {
    size_ = 1;
    while (size_ < n) size_ *= 2;
    add_.assign(2 * static_cast<size_t>(size_), 0);
    max_.assign(2 * static_cast<size_t>(size_), 0);
  }

  void add(int32_t l, int32_t r, int64_t d) {
    if (l < r) add(1, 0, size_, l, r, d);
  }
  // The largest value on [l, r); 0 when the range is empty.
  int64_t max(int32_t l, int32_t r) const { return l < r ? max(1, 0, size_, l, r) : 0; }
  // Writes the values of positions [l, r) to out[0, r - l), in O(r - l + log n).
  void values(int32_t l, int32_t r, int64_t* out) const {
    if (l < r) values(1, 0, size_, l, r, 0, out);
  }

 private:
  void add(int32_t v, int32_t lo, int32_t hi, int32_t l, int32_t r, int64_t d) {
    if (l <= lo && hi <= r) {
      add_[v] += d;
      max_[v] += d;
      return;
    }
    const int32_t mid = lo + (hi - lo) / 2;
    if (l < mid) add(2 * v, lo, mid, l, r, d);
    if (r > mid) add(2 * v + 1, mid, hi, l, r, d);
    max_[v] = add_[v] + std::max(max_[2 * v], max_[2 * v + 1]);
  }

  int64_t max(int32_t v, int32_t lo, int32_t hi, int32_t l, int32_t r) const {
    if (l <= lo && hi <= r) return max_[v];
    const int32_t mid = lo + (hi - lo) / 2;
    int64_t best = INT64_MIN;
    if (l < mid) best = std::max(best, max(2 * v, lo, mid, l, r));
    if (r > mid) best = std::max(best, max(2 * v + 1, mid, hi, l, r));
    return add_[v] + best;
  }

  void values(int32_t v, int32_t lo, int32_t hi, int32_t l, int32_t r, int64_t above,
              int64_t* out) const {
    above += add_[v];  // a leaf's value is the sum of the adds on its path
    if (hi - lo == 1) {
      out[lo - l] = above;
      return;
    }
    const int32_t mid = lo + (hi - lo) / 2;
    if (l < mid) values(2 * v, lo, mid, l, r, above, out);
    if (r > mid) values(2 * v + 1, mid, hi, l, r, above, out);
  }

  int32_t size_ = 1;
  std::vector<int64_t> add_, max_;
};

}  // namespace mallocgame
