// TimeUnions: the address ranges of the fast buffers, stored in a segment tree over the
// schedule's segments so that "the union of the ranges of every fast buffer live on segment j"
// is the merge of O(log S) small sorted lists.
//
// A buffer covering segments [l, r) is a member of the O(log S) canonical nodes of [l, r); each
// node keeps the union (sorted, disjoint, touching ranges merged) of its members' ranges. The
// buffers live on segment j are exactly the members of the nodes on the path from j's leaf to
// the root. The weights and optimizer state of a training step live across the whole schedule:
// they sit near the root, packed side by side, so their hundreds of ranges merge into a few,
// and a best-fit walk for a short buffer no longer sorts every one of them.
//
// insert() merges the range into each canonical node's union; erase() (undo) removes the member
// and marks the node stale; a stale node is rebuilt from its members when next read.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "mallocgame/sort_ranges.h"

namespace mallocgame {

class TimeUnions {
 public:
  using Range = std::pair<int64_t, int64_t>;  // (offset, top)

  void reset(int32_t segments) {
    size_ = 1;
    while (size_ < segments) size_ *= 2;
    const auto nodes = 2 * static_cast<size_t>(size_);
    if (members_.size() == nodes) {
      for (auto& m : members_) m.clear();
      for (auto& u : union_) u.clear();
    } else {
      members_.assign(nodes, {});
      union_.assign(nodes, {});
    }
    stale_.assign(nodes, 0);
  }

  // Buffer b, live on segments [l, r), became fast with range rg.
  void insert(int32_t b, int32_t l, int32_t r, Range rg) {
    for_canonical(l, r, [&](size_t v) {
      members_[v].push_back(b);
      if (!stale_[v]) merge_range(union_[v], rg);
    });
  }

  // Buffer b, live on segments [l, r), is fast no longer.
  void erase(int32_t b, int32_t l, int32_t r) {
    for_canonical(l, r, [&](size_t v) {
      auto& m = members_[v];
      // undo is last in, first out: b is almost always the last member
      for (size_t i = m.size(); i-- > 0;) {
        if (m[i] == b) {
          m.erase(m.begin() + static_cast<std::ptrdiff_t>(i));
          break;
        }
      }
      stale_[v] = 1;
    });
  }

  // Appends to out the unions of the nodes on the path from segment j's leaf to the root: the
  // ranges of every fast buffer live on segment j (merged per node, not across nodes).
  // range_of(b) gives a member's range, to rebuild stale nodes.
  template <typename RangeOf>
  void append_live_on(int32_t j, std::vector<Range>& out, RangeOf&& range_of) {
    for (size_t v = static_cast<size_t>(size_) + static_cast<size_t>(j); v >= 1; v >>= 1) {
      if (stale_[v]) rebuild(v, range_of);
      out.insert(out.end(), union_[v].begin(), union_[v].end());
    }
  }

 private:
  template <typename F>
  void for_canonical(int32_t l, int32_t r, F&& f) {
    size_t lo = static_cast<size_t>(size_) + static_cast<size_t>(l);
    size_t hi = static_cast<size_t>(size_) + static_cast<size_t>(r);
    while (lo < hi) {
      if (lo & 1) f(lo++);
      if (hi & 1) f(--hi);
      lo >>= 1;
      hi >>= 1;
    }
  }

  template <typename RangeOf>
  void rebuild(size_t v, RangeOf&& range_of) {
    auto& u = union_[v];
    u.clear();
    for (const int32_t b : members_[v]) u.push_back(range_of(b));
    sort_and_merge(u);
    stale_[v] = 0;
  }

  int32_t size_ = 1;
  std::vector<std::vector<int32_t>> members_;
  std::vector<std::vector<Range>> union_;
  std::vector<uint8_t> stale_;
};

}  // namespace mallocgame
