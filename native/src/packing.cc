// The exact fit-all packing search (see packing.h for the ideas and their sources).
#include "mallocgame/packing.h"

#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace mallocgame {

const char* pack_status_name(PackStatus status) {
  switch (status) {
    case PackStatus::kSolved: return "solved";
    case PackStatus::kInfeasible: return "infeasible";
    case PackStatus::kTimeout: return "timeout";
    case PackStatus::kNodeLimit: return "node_limit";
  }
  return "unknown";
}

namespace {

constexpr int64_t kMaxMagnitude = int64_t{1} << 60;
constexpr int64_t kMaxTotalBytes = int64_t{1} << 62;
// Section memberships plus twice the conflicting pairs: beyond this the tables would need more
// than about 400 MB.
constexpr int64_t kMaxIncidence = 50'000'000;
constexpr int64_t kUnplaced = -1;
constexpr int64_t kNone = std::numeric_limits<int64_t>::max();
constexpr const char* kHeuristicKeys = "WATZCOLUP";

using Clock = std::chrono::steady_clock;

enum class Code { kOk, kNotFound, kAborted, kStopped };

// One unplaced buffer in a node's ordering: its minimum offset, its rank in the partition's
// static preorder, its index.
struct Entry {
  int64_t off;
  int32_t rank;
  int32_t b;
};

inline bool entry_less(const Entry& x, const Entry& y) {
  return x.off != y.off ? x.off < y.off : x.rank < y.rank;
}

// A set of unplaced buffers that no other unplaced buffer conflicts with, and the range of
// sections [lo, hi) they live in.
struct Part {
  std::vector<int32_t> buffers;
  int32_t lo = 0, hi = 0;
};

// An undo record: min_off_[idx] was old.
struct Change {
  int32_t idx;
  int64_t old;
};

int64_t align_up(int64_t v, int64_t a) {
  const int64_t r = v % a;
  return r == 0 ? v : v + (a - r);
}

std::string at(const char* field, size_t i) { return std::string(field) + "[" + std::to_string(i) + "]"; }

class Packer {
 public:
  explicit Packer(const PackInput& in);
  PackResult run();

 private:
  // ------------------------------------------------------------------ search
  Code search(const Part& p, const std::vector<Entry>& parent, int64_t min_offset, int32_t min_rank);
  Code descend(const Part& p, const std::vector<Entry>& ord, int64_t off, int32_t rank, int32_t b);
  Code solve_pieces(const Part& p, const std::vector<int32_t>& cut_at);
  Code subsolve(const Part& p);
  Code solve_all();
  bool place(int32_t b, int64_t off);  // returns whether an unplaced buffer conflicts with b
  void unplace(int32_t b, size_t mark);
  bool feasible(const Part& p, int64_t off);
  void note_progress();
  std::vector<int32_t> preorder(const Part& p) const;
  void verify(const std::vector<int64_t>& offsets, bool complete) const;
  void check_restored() const;

  // ------------------------------------------------------------------ problem
  const PackInput& in_;
  PackOptions opt_;
  int32_t n_ = 0;
  int32_t num_sections_ = 0;
  int64_t cap_ = 0, align_ = 1;
  std::vector<int32_t> lo_, hi_;        // per buffer: its sections [lo, hi)
  std::vector<int64_t> sec_ptr_;        // CSR: section -> live buffers, unplaced ones first
  std::vector<int32_t> sec_buf_;
  std::vector<int64_t> mem_ptr_;        // per buffer: where its memberships start in mem_pos_
  std::vector<int64_t> mem_pos_;        // [mem_ptr_[b] + s - lo_[b]]: b's index in sec_buf_
  std::vector<int64_t> adj_ptr_;        // CSR: buffer -> conflicting buffers
  std::vector<int32_t> adj_;
  std::vector<std::string> heuristics_;
  const std::string* heuristic_ = nullptr;
  int64_t peak_live_ = 0;

  // ------------------------------------------------------------------ state
  std::vector<int64_t> off_;      // current offset, kUnplaced
  std::vector<int64_t> min_off_;  // lowest offset above the placed conflicting buffers
  std::vector<int64_t> sol_;      // last offset given to each buffer (the packing when solved)
  std::vector<uint8_t> solved_;   // in a piece that was solved and still stands
  std::vector<int64_t> sec_total_;  // bytes of the section's unplaced buffers
  std::vector<int32_t> witness_;    // an unplaced member at or below the slack last time (a hint)
  std::vector<int64_t> sec_cnt_;    // its unplaced buffers: sec_buf_[sec_ptr_[s], + sec_cnt_[s])
  std::vector<int32_t> cuts_;       // [S - 1]: unplaced buffers spanning sections k and k+1
  std::vector<Change> trail_;
  int64_t placed_ = 0, nsolved_ = 0;
  std::vector<int64_t> best_;
  int64_t best_count_ = -1;

  int64_t nodes_ = 0, backtracks_ = 0;
  int64_t budget_ = 0;  // nodes left for this heuristic in this round
  bool has_deadline_ = false, hit_node_limit_ = false;
  Clock::time_point start_, deadline_;
};

Packer::Packer(const PackInput& in) : in_(in), opt_(in.options) {
  start_ = Clock::now();
  if (!opt_.canonical_only) {
    opt_.monotonic_floor = false;
    opt_.check_dominance = false;
    opt_.hatless_pruning = false;
  }
  n_ = static_cast<int32_t>(in.sizes.size());
  cap_ = in.capacity;
  align_ = in.alignment;
  heuristics_ = in.heuristics.empty() ? std::vector<std::string>{"WAT", "TAW", "TWA"} : in.heuristics;
  if (std::isfinite(in.time_limit_s) && in.time_limit_s >= 0) {
    has_deadline_ = true;
    const auto d = std::chrono::duration<double>(std::min(in.time_limit_s, 1e9));
    deadline_ = start_ + std::chrono::duration_cast<Clock::duration>(d);
  }
  if (n_ == 0) return;

  // Sections: one per distinct end position E, holding the buffers live just before E.
  std::vector<int64_t> ends(in.ends);
  std::sort(ends.begin(), ends.end());
  ends.erase(std::unique(ends.begin(), ends.end()), ends.end());
  num_sections_ = static_cast<int32_t>(ends.size());
  lo_.resize(n_);
  hi_.resize(n_);
  int64_t incidence = 0;
  for (int32_t b = 0; b < n_; ++b) {
    lo_[b] = static_cast<int32_t>(std::upper_bound(ends.begin(), ends.end(), in.starts[b]) - ends.begin());
    hi_[b] = static_cast<int32_t>(std::lower_bound(ends.begin(), ends.end(), in.ends[b]) - ends.begin()) + 1;
    incidence += hi_[b] - lo_[b];
  }
  // Conflicting pairs, counted before anything is allocated: sorted by start, buffer i
  // conflicts with every later j whose start is before i's end.
  std::vector<int32_t> by_start(n_);
  for (int32_t b = 0; b < n_; ++b) by_start[b] = b;
  std::sort(by_start.begin(), by_start.end(), [&](int32_t x, int32_t y) {
    return in.starts[x] != in.starts[y] ? in.starts[x] < in.starts[y] : x < y;
  });
  std::vector<int64_t> sorted_starts(n_);
  for (int32_t i = 0; i < n_; ++i) sorted_starts[i] = in.starts[by_start[i]];
  for (int32_t i = 0; i < n_ && incidence <= kMaxIncidence; ++i) {
    const int64_t e = in.ends[by_start[i]];
    const auto last = std::lower_bound(sorted_starts.begin() + i + 1, sorted_starts.end(), e);
    incidence += 2 * (last - (sorted_starts.begin() + i + 1));
  }
  if (incidence > kMaxIncidence) {
    throw std::invalid_argument("instance too large for the exact search: more than " +
                                std::to_string(kMaxIncidence) +
                                " section memberships and conflicting pairs");
  }
  sec_ptr_.assign(num_sections_ + 1, 0);
  for (int32_t b = 0; b < n_; ++b) {
    for (int32_t s = lo_[b]; s < hi_[b]; ++s) ++sec_ptr_[s + 1];
  }
  for (int32_t s = 0; s < num_sections_; ++s) sec_ptr_[s + 1] += sec_ptr_[s];
  sec_buf_.resize(sec_ptr_[num_sections_]);
  mem_ptr_.assign(n_ + 1, 0);
  for (int32_t b = 0; b < n_; ++b) mem_ptr_[b + 1] = mem_ptr_[b] + (hi_[b] - lo_[b]);
  mem_pos_.resize(mem_ptr_[n_]);
  {
    std::vector<int64_t> fill(sec_ptr_.begin(), sec_ptr_.end() - 1);
    for (int32_t b = 0; b < n_; ++b) {
      for (int32_t s = lo_[b]; s < hi_[b]; ++s) {
        mem_pos_[mem_ptr_[b] + (s - lo_[b])] = fill[s];
        sec_buf_[fill[s]++] = b;
      }
    }
  }
  sec_cnt_.resize(num_sections_);
  for (int32_t s = 0; s < num_sections_; ++s) sec_cnt_[s] = sec_ptr_[s + 1] - sec_ptr_[s];
  // Two sweeps (count, then fill) rather than a temporary list of pairs.
  adj_ptr_.assign(n_ + 1, 0);
  for (int32_t i = 0; i < n_; ++i) {
    const int32_t x = by_start[i];
    for (int32_t k = i + 1; k < n_ && sorted_starts[k] < in.ends[x]; ++k) {
      ++adj_ptr_[x + 1];
      ++adj_ptr_[by_start[k] + 1];
    }
  }
  for (int32_t b = 0; b < n_; ++b) adj_ptr_[b + 1] += adj_ptr_[b];
  adj_.resize(adj_ptr_[n_]);
  {
    std::vector<int64_t> fill(adj_ptr_.begin(), adj_ptr_.end() - 1);
    for (int32_t i = 0; i < n_; ++i) {
      const int32_t x = by_start[i];
      for (int32_t k = i + 1; k < n_ && sorted_starts[k] < in.ends[x]; ++k) {
        const int32_t y = by_start[k];
        adj_[fill[x]++] = y;
        adj_[fill[y]++] = x;
      }
    }
  }

  off_.assign(n_, kUnplaced);
  min_off_.assign(n_, 0);
  sol_.assign(n_, kUnplaced);
  best_.assign(n_, kUnplaced);
  solved_.assign(n_, 0);
  sec_total_.assign(num_sections_, 0);
  witness_.assign(num_sections_, -1);
  for (int32_t b = 0; b < n_; ++b) {
    for (int32_t s = lo_[b]; s < hi_[b]; ++s) {
      sec_total_[s] += in.sizes[b];
    }
  }
  for (int32_t s = 0; s < num_sections_; ++s) peak_live_ = std::max(peak_live_, sec_total_[s]);
  cuts_.assign(num_sections_ > 0 ? num_sections_ - 1 : 0, 0);
  {
    std::vector<int32_t> diff(num_sections_ + 1, 0);
    for (int32_t b = 0; b < n_; ++b) {
      if (hi_[b] - lo_[b] >= 2) {
        ++diff[lo_[b]];
        --diff[hi_[b] - 1];
      }
    }
    int32_t run = 0;
    for (int32_t k = 0; k + 1 < num_sections_; ++k) cuts_[k] = (run += diff[k]);
  }
}

// The static preorder of a partition's buffers under the current heuristic.
std::vector<int32_t> Packer::preorder(const Part& p) const {
  struct Key {
    int64_t width, size, sections, overlaps, start, end, total;
    long double area;
    double priority;
    int32_t b;
  };
  std::vector<Key> keys;
  keys.reserve(p.buffers.size());
  for (const int32_t b : p.buffers) {
    Key k;
    k.b = b;
    k.width = in_.ends[b] - in_.starts[b];
    k.size = in_.sizes[b];
    k.area = static_cast<long double>(k.size) * static_cast<long double>(k.width);
    k.sections = hi_[b] - lo_[b];
    k.overlaps = adj_ptr_[b + 1] - adj_ptr_[b];
    k.start = in_.starts[b];
    k.end = in_.ends[b];
    k.total = 0;
    for (int32_t s = lo_[b]; s < hi_[b]; ++s) k.total = std::max(k.total, sec_total_[s]);
    k.priority = in_.priority.empty() ? 0.0 : in_.priority[b];
    keys.push_back(k);
  }
  const std::string& h = *heuristic_;
  std::sort(keys.begin(), keys.end(), [&h](const Key& x, const Key& y) {
    for (const char c : h) {
      switch (c) {
        case 'W': if (x.width != y.width) return x.width > y.width; break;
        case 'A': if (x.area != y.area) return x.area > y.area; break;
        case 'T': if (x.total != y.total) return x.total > y.total; break;
        case 'Z': if (x.size != y.size) return x.size > y.size; break;
        case 'C': if (x.sections != y.sections) return x.sections > y.sections; break;
        case 'O': if (x.overlaps != y.overlaps) return x.overlaps > y.overlaps; break;
        case 'L': if (x.start != y.start) return x.start > y.start; break;
        case 'U': if (x.end != y.end) return x.end > y.end; break;
        case 'P': if (x.priority != y.priority) return x.priority > y.priority; break;
        default: break;
      }
    }
    return x.b < y.b;
  });
  std::vector<int32_t> out(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) out[i] = keys[i].b;
  return out;
}

bool Packer::place(int32_t b, int64_t off) {
  off_[b] = off;
  sol_[b] = off;
  ++placed_;
  const int64_t need = align_up(off + in_.sizes[b], align_);
  bool hat = false;
  for (int64_t k = adj_ptr_[b]; k < adj_ptr_[b + 1]; ++k) {
    const int32_t j = adj_[k];
    if (off_[j] != kUnplaced) continue;
    hat = true;
    const int64_t old = min_off_[j];
    if (old >= need) continue;
    trail_.push_back({j, old});
    min_off_[j] = need;
  }
  for (int32_t s = lo_[b]; s < hi_[b]; ++s) {
    sec_total_[s] -= in_.sizes[b];
    // Move b behind the section's unplaced buffers (unplace, being LIFO, just undoes the count).
    const int64_t last = sec_ptr_[s] + --sec_cnt_[s];
    const int64_t pb = mem_pos_[mem_ptr_[b] + (s - lo_[b])];
    const int32_t u = sec_buf_[last];
    sec_buf_[pb] = u;
    mem_pos_[mem_ptr_[u] + (s - lo_[u])] = pb;
    sec_buf_[last] = b;
    mem_pos_[mem_ptr_[b] + (s - lo_[b])] = last;
  }
  return hat;
}

void Packer::unplace(int32_t b, size_t mark) {
  while (trail_.size() > mark) {
    min_off_[trail_.back().idx] = trail_.back().old;
    trail_.pop_back();
  }
  for (int32_t s = lo_[b]; s < hi_[b]; ++s) {
    sec_total_[s] += in_.sizes[b];
    ++sec_cnt_[s];  // b sits right behind the unplaced ones: placements are undone LIFO
  }
  off_[b] = kUnplaced;
  --placed_;
}

// Section inference: the unplaced buffers of a section stack above its floor, the larger of
// the last placed offset (monotonic floor) and their least minimum offset (unallocated floor);
// prune when floor + their bytes > capacity. The least minimum offset is not kept: only whether
// it exceeds the slack (capacity - bytes) matters, and an unplaced member at or below the slack
// (the cached witness, else one found by a scan of the unplaced members) says it does not.
bool Packer::feasible(const Part& p, int64_t off) {
  if (!opt_.section_inference) return true;
  for (int32_t s = p.lo; s < p.hi; ++s) {
    const int64_t total = sec_total_[s];
    if (total == 0) continue;
    const int64_t slack = cap_ - total;
    if (opt_.monotonic_floor && off > slack) return false;
    const int32_t w = witness_[s];
    if (w >= 0 && off_[w] == kUnplaced && min_off_[w] <= slack) continue;
    bool found = false;
    for (int64_t k = sec_ptr_[s], e = sec_ptr_[s] + sec_cnt_[s]; k < e; ++k) {
      if (min_off_[sec_buf_[k]] <= slack) {
        witness_[s] = sec_buf_[k];
        found = true;
        break;
      }
    }
    if (!found) return false;
  }
  return true;
}

void Packer::note_progress() {
  const int64_t count = placed_ + nsolved_;
  if (count <= best_count_) return;
  best_count_ = count;
  for (int32_t b = 0; b < n_; ++b) {
    best_[b] = off_[b] != kUnplaced ? off_[b] : (solved_[b] ? sol_[b] : kUnplaced);
  }
}

Code Packer::search(const Part& p, const std::vector<Entry>& parent, int64_t min_offset,
                    int32_t min_rank) {
  if (budget_ <= 0) return Code::kAborted;
  if (in_.node_limit >= 0 && nodes_ >= in_.node_limit) {
    hit_node_limit_ = true;
    return Code::kStopped;
  }
  --budget_;
  ++nodes_;
  if (has_deadline_ && Clock::now() >= deadline_) return Code::kStopped;  // ~25 ns a node
  std::vector<Entry> ord;
  ord.reserve(parent.size());
  for (const Entry& e : parent) {
    if (off_[e.b] == kUnplaced) ord.push_back({min_off_[e.b], e.rank, e.b});
  }
  note_progress();
  if (ord.empty()) return Code::kOk;
  if (opt_.dynamic_ordering) std::sort(ord.begin(), ord.end(), entry_less);
  int64_t min_height = kNone;
  for (const Entry& e : ord) min_height = std::min(min_height, e.off + in_.sizes[e.b]);
  for (const Entry& e : ord) {
    if (opt_.canonical_only && (e.off < min_offset || (e.off == min_offset && e.rank < min_rank))) {
      continue;
    }
    if (opt_.check_dominance && e.off >= min_height) {
      if (opt_.dynamic_ordering) break;  // sorted by offset: no later entry passes either
      continue;
    }
    if (e.off > cap_ - in_.sizes[e.b]) continue;
    const size_t mark = trail_.size();
    const bool hat = place(e.b, e.off);
    Code code = Code::kNotFound;
    if (feasible(p, e.off)) code = descend(p, ord, e.off, e.rank, e.b);
    unplace(e.b, mark);
    if (code != Code::kNotFound) return code;
    if (!hat && opt_.hatless_pruning) break;
  }
  ++backtracks_;
  return Code::kNotFound;
}

Code Packer::descend(const Part& p, const std::vector<Entry>& ord, int64_t off, int32_t rank,
                     int32_t b) {
  if (!opt_.dynamic_decomposition) return search(p, ord, off, rank);
  std::vector<int32_t> cut_at;
  for (int32_t k = lo_[b]; k + 1 < hi_[b]; ++k) {
    if (--cuts_[k] == 0) cut_at.push_back(k + 1);
  }
  const Code code = cut_at.empty() ? search(p, ord, off, rank) : solve_pieces(p, cut_at);
  for (int32_t k = lo_[b]; k + 1 < hi_[b]; ++k) ++cuts_[k];
  return code;
}

// Splits p at the section boundaries cut_at (ascending, inside (p.lo, p.hi)) and solves the
// pieces one after the other; a piece's buffers are marked solved while the pieces after it
// are searched, and unmarked again if one of them fails.
Code Packer::solve_pieces(const Part& p, const std::vector<int32_t>& cut_at) {
  std::vector<int32_t> bounds;
  bounds.reserve(cut_at.size() + 2);
  bounds.push_back(p.lo);
  bounds.insert(bounds.end(), cut_at.begin(), cut_at.end());
  bounds.push_back(p.hi);
  std::vector<int32_t> newly_solved;
  Code code = Code::kOk;
  for (size_t i = 0; i + 1 < bounds.size(); ++i) {
    Part piece;
    piece.lo = bounds[i];
    piece.hi = bounds[i + 1];
    for (const int32_t b : p.buffers) {
      if (off_[b] == kUnplaced && lo_[b] < piece.hi && piece.lo < hi_[b]) piece.buffers.push_back(b);
    }
    if (piece.buffers.empty()) continue;
    code = subsolve(piece);
    if (code != Code::kOk) break;
    // Pieces solved inside this one (nested decompositions) have marked theirs already.
    for (const int32_t b : piece.buffers) {
      if (!solved_[b]) {
        solved_[b] = 1;
        ++nsolved_;
      }
      newly_solved.push_back(b);
    }
  }
  if (code != Code::kOk) {
    for (const int32_t b : newly_solved) {
      if (solved_[b]) {
        solved_[b] = 0;
        --nsolved_;
      }
    }
  }
  return code;
}

Code Packer::subsolve(const Part& p) {
  const std::vector<int32_t> order = preorder(p);
  std::vector<Entry> ord(order.size());
  for (size_t i = 0; i < order.size(); ++i) ord[i] = {0, static_cast<int32_t>(i), order[i]};
  return search(p, ord, 0, 0);
}

Code Packer::solve_all() {
  Part all;
  all.lo = 0;
  all.hi = num_sections_;
  all.buffers.resize(n_);
  for (int32_t b = 0; b < n_; ++b) all.buffers[b] = b;
  std::vector<int32_t> cut_at;
  if (opt_.dynamic_decomposition) {
    for (int32_t k = 0; k + 1 < num_sections_; ++k) {
      if (cuts_[k] == 0) cut_at.push_back(k + 1);
    }
  }
  return solve_pieces(all, cut_at);
}

// Every search that did not succeed must leave the state as it found it.
void Packer::check_restored() const {
  if (placed_ != 0 || nsolved_ != 0 || !trail_.empty()) {
    throw std::logic_error("pack: internal error, the search state was not restored");
  }
}

// The returned packing (complete, or partial: unplaced buffers skipped) is checked.
void Packer::verify(const std::vector<int64_t>& offsets, bool complete) const {
  for (int32_t b = 0; b < n_; ++b) {
    const int64_t o = offsets[b];
    if (o == kUnplaced && !complete) continue;
    if (o < 0 || o % align_ != 0 || o > cap_ - in_.sizes[b]) {
      throw std::logic_error("pack: internal error, buffer " + std::to_string(b) +
                             " got an invalid offset " + std::to_string(o));
    }
    for (int64_t k = adj_ptr_[b]; k < adj_ptr_[b + 1]; ++k) {
      const int32_t j = adj_[k];
      if (offsets[j] == kUnplaced) continue;
      if (o < offsets[j] + in_.sizes[j] && offsets[j] < o + in_.sizes[b]) {
        throw std::logic_error("pack: internal error, buffers " + std::to_string(b) + " and " +
                               std::to_string(j) + " overlap");
      }
    }
  }
}

PackResult Packer::run() {
  PackResult r;
  r.sections = num_sections_;
  r.peak_live = peak_live_;
  Code code = Code::kOk;
  if (n_ > 0) {
    if (heuristics_.size() == 1) {
      heuristic_ = &heuristics_[0];
      budget_ = std::numeric_limits<int64_t>::max();
      r.rounds = 1;
      code = solve_all();
      if (code != Code::kOk) check_restored();
    } else {
      // Round robin: every heuristic gets the same node budget, doubled every round.
      int64_t limit = n_;
      code = Code::kAborted;
      while (code == Code::kAborted) {
        limit = limit > std::numeric_limits<int64_t>::max() / 4 ? limit : limit * 2;
        ++r.rounds;
        for (const std::string& h : heuristics_) {
          heuristic_ = &h;
          budget_ = limit;
          code = solve_all();
          if (code != Code::kOk) check_restored();
          if (code != Code::kAborted) break;
        }
      }
    }
  }
  r.nodes = nodes_;
  r.backtracks = backtracks_;
  switch (code) {
    case Code::kOk:
      r.status = PackStatus::kSolved;
      r.offsets = sol_;
      verify(r.offsets, true);
      break;
    case Code::kNotFound:
      r.status = PackStatus::kInfeasible;
      r.offsets = best_;
      break;
    default:
      r.status = hit_node_limit_ ? PackStatus::kNodeLimit : PackStatus::kTimeout;
      r.offsets = best_;
      break;
  }
  if (r.status == PackStatus::kSolved || r.status == PackStatus::kInfeasible) {
    r.heuristic = heuristic_ ? *heuristic_ : "";
  }
  if (r.status != PackStatus::kSolved) verify(r.offsets, false);
  for (int32_t b = 0; b < n_; ++b) {
    if (r.offsets[b] >= 0) {
      ++r.placed;
      r.height = std::max(r.height, r.offsets[b] + in_.sizes[b]);
    }
  }
  r.wall_s = std::chrono::duration<double>(Clock::now() - start_).count();
  return r;
}

struct Job {
  const PackInput* in = nullptr;
  PackResult out;
  std::exception_ptr error;
};

void* run_job(void* arg) {
  Job* job = static_cast<Job*>(arg);
  try {
    Packer packer(*job->in);
    job->out = packer.run();
  } catch (...) {
    job->error = std::current_exception();
  }
  return nullptr;
}

}  // namespace

void check_pack_input(const PackInput& in) {
  const size_t n = in.sizes.size();
  if (in.starts.size() != n || in.ends.size() != n) {
    throw std::invalid_argument("sizes, starts and ends must have the same length, got " +
                                std::to_string(n) + ", " + std::to_string(in.starts.size()) + ", " +
                                std::to_string(in.ends.size()));
  }
  if (n > static_cast<size_t>(std::numeric_limits<int32_t>::max() / 2)) {
    throw std::invalid_argument("too many buffers: " + std::to_string(n));
  }
  int64_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    if (in.sizes[i] <= 0 || in.sizes[i] > kMaxMagnitude) {
      throw std::invalid_argument(at("sizes", i) + " must be in [1, 2^60], got " + std::to_string(in.sizes[i]));
    }
    if (std::llabs(in.starts[i]) > kMaxMagnitude || std::llabs(in.ends[i]) > kMaxMagnitude) {
      throw std::invalid_argument(at("starts/ends", i) + " must be within +-2^60");
    }
    if (in.starts[i] >= in.ends[i]) {
      throw std::invalid_argument(at("starts", i) + " must be below ends[" + std::to_string(i) + "], got [" +
                                  std::to_string(in.starts[i]) + ", " + std::to_string(in.ends[i]) + ")");
    }
    total += in.sizes[i];
    if (total > kMaxTotalBytes) throw std::invalid_argument("sizes sum to more than 2^62");
  }
  if (in.capacity < 0 || in.capacity > kMaxMagnitude) {
    throw std::invalid_argument("capacity must be in [0, 2^60], got " + std::to_string(in.capacity));
  }
  if (in.alignment < 1 || in.alignment > kMaxMagnitude) {
    throw std::invalid_argument("alignment must be in [1, 2^60], got " + std::to_string(in.alignment));
  }
  if (!in.priority.empty()) {
    if (in.priority.size() != n) {
      throw std::invalid_argument("priority must have " + std::to_string(n) + " entries, got " +
                                  std::to_string(in.priority.size()));
    }
    for (size_t i = 0; i < n; ++i) {
      if (!std::isfinite(in.priority[i])) throw std::invalid_argument(at("priority", i) + " is not finite");
    }
  }
  if (in.heuristics.size() > 64) throw std::invalid_argument("at most 64 heuristics");
  for (size_t i = 0; i < in.heuristics.size(); ++i) {
    const std::string& h = in.heuristics[i];
    if (h.empty() || h.size() > 32) {
      throw std::invalid_argument(at("heuristics", i) + " must have 1 to 32 keys");
    }
    for (const char c : h) {
      if (std::strchr(kHeuristicKeys, c) == nullptr || c == '\0') {
        throw std::invalid_argument(at("heuristics", i) + " = '" + h + "': unknown key '" + std::string(1, c) +
                                    "' (keys: " + kHeuristicKeys + ")");
      }
      if (c == 'P' && in.priority.empty()) {
        throw std::invalid_argument(at("heuristics", i) + " = '" + h + "' uses P but no priority was given");
      }
    }
  }
  if (std::isnan(in.time_limit_s)) throw std::invalid_argument("time_limit is NaN");
}

PackResult pack(const PackInput& in) {
  check_pack_input(in);
  Job job;
  job.in = &in;
  // The search recurses about twice per placed buffer: give it a stack of its own.
  const size_t stack = (size_t{32} << 20) + in.sizes.size() * size_t{4096};
  pthread_attr_t attr;
  if (pthread_attr_init(&attr) != 0) throw std::runtime_error("pack: pthread_attr_init failed");
  int rc = pthread_attr_setstacksize(&attr, stack);
  pthread_t thread;
  if (rc == 0) rc = pthread_create(&thread, &attr, &run_job, &job);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    throw std::runtime_error("pack: could not start the search thread (stack of " +
                             std::to_string(stack >> 20) + " MiB): error " + std::to_string(rc));
  }
  pthread_join(thread, nullptr);
  if (job.error) std::rethrow_exception(job.error);
  return std::move(job.out);
}

}  // namespace mallocgame
