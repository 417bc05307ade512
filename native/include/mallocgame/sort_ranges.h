// Address ranges (offset, top): sorting them by offset, fast for the tens of thousands that a
// best-fit walk can meet at scale, and keeping unions of them as sorted disjoint ranges.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace mallocgame {

// Sorts (offset, top) ranges by offset, every offset below `bound`: std::sort for a few, else
// an LSD radix sort on the offset (11-bit digits over the bits that [0, bound) needs; ranges of
// equal offset may then come in any order of top, which a gap walk does not depend on). A walk
// for a long-lived buffer sorts every buffer live with it, tens of thousands at scale, where
// std::sort took 95% of msa's time.
inline void sort_by_offset(std::vector<std::pair<int64_t, int64_t>>& v,
                           std::vector<std::pair<int64_t, int64_t>>& tmp, int64_t bound) {
  if (v.size() <= 512) {
    std::sort(v.begin(), v.end());
    return;
  }
  constexpr int kBits = 11;  // 2048 counts: small enough to clear for every sort
  constexpr size_t kBuckets = size_t{1} << kBits;
  int bits = 1;
  while (bits < 63 && (int64_t{1} << bits) <= bound) ++bits;
  tmp.resize(v.size());
  size_t count[kBuckets];
  for (int shift = 0; shift < bits; shift += kBits) {
    std::fill(count, count + kBuckets, 0);
    for (const auto& r : v) ++count[(static_cast<uint64_t>(r.first) >> shift) & (kBuckets - 1)];
    size_t sum = 0;
    for (size_t& c : count) {
      const size_t here = c;
      c = sum;
      sum += here;
    }
    for (const auto& r : v) tmp[count[(static_cast<uint64_t>(r.first) >> shift) & (kBuckets - 1)]++] = r;
    v.swap(tmp);
  }
}

// Merges r into u, sorted disjoint ranges (touching ranges merge: a gap walk sees no gap
// between them), in O(|u|).
inline void merge_range(std::vector<std::pair<int64_t, int64_t>>& u, std::pair<int64_t, int64_t> r) {
  using Range = std::pair<int64_t, int64_t>;
  // the first range whose top reaches r's offset: every earlier one ends before r starts
  auto lo = std::lower_bound(u.begin(), u.end(), r.first,
                             [](const Range& x, int64_t off) { return x.second < off; });
  auto hi = lo;
  while (hi != u.end() && hi->first <= r.second) {
    r.first = std::min(r.first, hi->first);
    r.second = std::max(r.second, hi->second);
    ++hi;
  }
  if (lo == hi) {
    u.insert(lo, r);
  } else {
    *lo = r;
    u.erase(lo + 1, hi);
  }
}

// Sorts u and merges it into sorted disjoint ranges (touching ones merged).
inline void sort_and_merge(std::vector<std::pair<int64_t, int64_t>>& u) {
  std::sort(u.begin(), u.end());
  size_t w = 0;
  for (size_t i = 0; i < u.size(); ++i) {
    if (w > 0 && u[i].first <= u[w - 1].second) {
      u[w - 1].second = std::max(u[w - 1].second, u[i].second);
    } else {
      u[w++] = u[i];
    }
  }
  u.resize(w);
}

}  // namespace mallocgame
