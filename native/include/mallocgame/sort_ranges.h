// Sorting address ranges (offset, top) by offset, fast for the tens of thousands that a
// best-fit walk meets at scale.
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

}  // namespace mallocgame
