// Game: candidates, moves, undo, the greedy rollout.
#include "mallocgame/game.h"

#include "mallocgame/sort_ranges.h"

#include <algorithm>
#include <sstream>
#include <stdexcept>
#include <string>

namespace mallocgame {
namespace {

int64_t align_up(int64_t x, int64_t alignment) {
  const int64_t r = x % alignment;
  return r == 0 ? x : x + (alignment - r);
}

// Best fit first: least leftover, then lowest offset.
struct BetterFit {
  bool operator()(const Game::Candidate& x, const Game::Candidate& y) const {
    return x.leftover != y.leftover ? x.leftover < y.leftover : x.offset < y.offset;
  }
};

[[noreturn]] void illegal(const std::string& message) { throw std::invalid_argument(message); }

}  // namespace

Game::Game(std::shared_ptr<const Instance> instance) : inst_(std::move(instance)) {
  if (!inst_) illegal("Game needs an Instance, got None");
  const int g = inst_->grid();
  offset_.assign(static_cast<size_t>(inst_->num_buffers()), kUndecided);
  instr_time_.assign(static_cast<size_t>(inst_->num_instructions()), 0.0);
  grid_.assign(static_cast<size_t>(g) * g, 0);
  grid_value_.assign(static_cast<size_t>(g) * g, 0.0f);
  cands_.reserve(static_cast<size_t>(inst_->num_candidates()));
  fast_index_ = IntervalIndex(inst_->intervals(), false);
  leaf_range_.assign(static_cast<size_t>(inst_->intervals()->leaves()), {0, 0});
  pending_index_ = IntervalIndex(inst_->intervals(), true);
  reset();
}

void Game::reset() {
  std::fill(offset_.begin(), offset_.end(), kUndecided);
  for (int32_t i = 0; i < inst_->num_instructions(); ++i) {
    instr_time_[i] = inst_->instruction_time(i, offset_.data(), -1);
  }
  std::fill(grid_.begin(), grid_.end(), 0);
  std::fill(grid_value_.begin(), grid_value_.end(), 0.0f);
  fast_index_.reset(false);
  leaf_unions_.reset(inst_->intervals()->leaves());
  live_unions_.reset(inst_->num_segments());
  pending_index_.reset(true);
  in_use_.reset(inst_->num_segments());
  stack_.clear();
  time_ = inst_->all_slow_time();
  return_ = 0.0;
  fast_bytes_ = 0;
  undecided_bytes_ = inst_->total_bytes();
  turn_ = 0;
  failed_ = false;
  begin_turn();
}

void Game::begin_turn() {
  evaluated_ = false;
  cands_.clear();
  gaps_.clear();
  blocked_ = 0;
  blocked_known_ = true;
  if (turn_ >= inst_->num_buffers()) return;
  const int32_t b = inst_->buffer_at(turn_);
  // No gap can hold b when the most fast bytes in use at one position of its live range leave
  // less than its size: then the walk over the buffers live with it is skipped (the blocked
  // bytes are found when asked for).
  const int64_t in_use = in_use_.max(inst_->segment_begin(b), inst_->segment_end(b));
  if (inst_->size(b) > inst_->capacity() - in_use) {
    blocked_known_ = false;
  } else {
    walk_gaps(b);
    const size_t k = std::min(gaps_.size(), static_cast<size_t>(inst_->num_candidates()));
    std::partial_sort(gaps_.begin(), gaps_.begin() + static_cast<std::ptrdiff_t>(k), gaps_.end(),
                      BetterFit());
    cands_.assign(gaps_.begin(), gaps_.begin() + static_cast<std::ptrdiff_t>(k));
  }
  if (cands_.empty() && inst_->objective() == Objective::kFitAll) failed_ = true;
}

int64_t Game::blocked_bytes() {
  if (!blocked_known_ && !done()) {
    walk_gaps(inst_->buffer_at(turn_));
    blocked_known_ = true;
  }
  return blocked_;
}

void Game::walk_gaps(int32_t b) {
  const int64_t size = inst_->size(b);
  const int64_t capacity = inst_->capacity();
  const int64_t alignment = inst_->alignment();

  // Walk the free gaps of [0, capacity) between the address ranges of the conflicting fast
  // buffers, visited in increasing offset order.
  gaps_.clear();
  int64_t free_bytes = 0;
  int64_t cursor = 0;
  auto consider = [&](int64_t g0, int64_t g1) {
    free_bytes += g1 - g0;
    const int64_t off = align_up(g0, alignment);
    if (off < g1 && size <= g1 - off) gaps_.push_back({off, g1 - off - size, g1 - g0});
  };
  auto visit = [&](int64_t lo, int64_t hi) {
    if (lo > cursor) consider(cursor, lo);
    cursor = std::max(cursor, hi);
  };
  const int64_t st = inst_->start(b), en = inst_->end(b);
  // The fast buffers live with b: those live at its start (merged per node of the segment
  // tree), then those that start inside [st, en) — a run of leaves, read from the block unions
  // where it spans whole blocks. (Some come twice; the walk takes the union.)
  ranges_.clear();
  live_unions_.append_live_on(inst_->segment_begin(b), ranges_, [&](int32_t p) {
    return std::pair<int64_t, int64_t>{offset_[p], offset_[p] + inst_->size(p)};
  });
  const IntervalLayout& lay = *inst_->intervals();
  const int32_t l2 = lay.first_leaf_from(en);
  auto active = [&](int32_t leaf) { return fast_index_.active_leaf(leaf); };
  auto range_of = [&](int32_t leaf) { return leaf_range_[static_cast<size_t>(leaf)]; };
  for (int32_t leaf = lay.first_leaf_from(st); leaf < l2;) {
    if (leaf % BlockUnions::kBlock == 0 && leaf + BlockUnions::kBlock <= l2) {
      leaf_unions_.append(BlockUnions::block_of(leaf), ranges_, active, range_of);
      leaf += BlockUnions::kBlock;
    } else {
      if (active(leaf)) ranges_.push_back(range_of(leaf));
      ++leaf;
    }
  }
  sort_by_offset(ranges_, ranges_tmp_, capacity);
  for (const auto& r : ranges_) visit(r.first, r.second);
  if (cursor < capacity) consider(cursor, capacity);
  blocked_ = capacity - free_bytes;
}

bool Game::is_legal(int64_t action) const {
  if (done() || action < 0) return false;
  if (action == 0) return inst_->objective() == Objective::kTime;
  return action <= static_cast<int64_t>(cands_.size());
}

void Game::write_candidates(int64_t* out) const {
  const int k = inst_->num_candidates();
  for (int j = 0; j < k; ++j) {
    out[j] = (!done() && j < static_cast<int>(cands_.size())) ? cands_[j].offset : -1;
  }
}

void Game::write_mask(bool* out) const {
  const int actions = inst_->num_actions();
  for (int a = 0; a < actions; ++a) out[a] = is_legal(a);
}

double Game::evaluate_fast(int32_t b) {
  new_times_.clear();
  double saved = 0.0;
  for (const int32_t* p = inst_->touched_begin(b); p != inst_->touched_end(b); ++p) {
    const double t = inst_->instruction_time(*p, offset_.data(), b);
    new_times_.push_back(t);
    saved += instr_time_[*p] - t;
  }
  evaluated_ = true;
  saved_ = saved;
  return saved;
}

double Game::fast_reward() {
  if (done()) return 0.0;
  const int32_t b = inst_->buffer_at(turn_);
  if (inst_->objective() == Objective::kFitAll) {
    return static_cast<double>(inst_->size(b)) / static_cast<double>(inst_->total_bytes());
  }
  if (!evaluated_) evaluate_fast(b);
  return saved_ / inst_->reward_scale();
}

double Game::place_fast(int32_t b, int64_t offset) {
  if (!evaluated_) evaluate_fast(b);
  const double before = time_;
  stack_.push_back({b, offset, before, return_});
  size_t k = 0;
  for (const int32_t* p = inst_->touched_begin(b); p != inst_->touched_end(b); ++p) {
    instr_time_[*p] = new_times_[k++];
  }
  time_ -= saved_;
  double reward;
  if (inst_->objective() == Objective::kFitAll) {
    reward = static_cast<double>(inst_->size(b)) / static_cast<double>(inst_->total_bytes());
  } else {
    reward = saved_ / inst_->reward_scale();
  }
  offset_[b] = offset;
  pending_index_.deactivate(b);
  fast_bytes_ += inst_->size(b);
  undecided_bytes_ -= inst_->size(b);
  paint(b, offset, true);
  mark(b, offset, true);
  return_ += reward;
  ++turn_;
  begin_turn();
  return reward;
}

double Game::place_slow(int32_t b) {
  stack_.push_back({b, kSlow, time_, return_});
  offset_[b] = kSlow;
  pending_index_.deactivate(b);
  undecided_bytes_ -= inst_->size(b);
  ++turn_;
  begin_turn();
  return 0.0;  // an undecided buffer already counts as slow: nothing changes
}

double Game::step(int64_t action) {
  if (done()) illegal(failed_ ? "the game is over (dead end)" : "the game is over");
  const int32_t b = inst_->buffer_at(turn_);
  if (action < 0 || action > inst_->num_candidates()) {
    std::ostringstream os;
    os << "action " << action << " is out of range [0, " << inst_->num_candidates() << "]";
    illegal(os.str());
  }
  if (action == 0) {
    if (inst_->objective() == Objective::kFitAll) {
      illegal("action 0 (slow memory) is illegal in a fit-all game");
    }
    return place_slow(b);
  }
  if (action > static_cast<int64_t>(cands_.size())) {
    std::ostringstream os;
    os << "action " << action << " is illegal: buffer " << b << " has only " << cands_.size()
       << " candidate offset(s) now";
    illegal(os.str());
  }
  return place_fast(b, cands_[static_cast<size_t>(action - 1)].offset);
}

void Game::undo() {
  if (stack_.empty()) illegal("nothing to undo");
  const Record r = stack_.back();
  stack_.pop_back();
  const int32_t b = r.buffer;
  if (r.offset >= 0) {
    paint(b, r.offset, false);
    mark(b, r.offset, false);
    fast_bytes_ -= inst_->size(b);
    offset_[b] = kUndecided;
    for (const int32_t* p = inst_->touched_begin(b); p != inst_->touched_end(b); ++p) {
      instr_time_[*p] = inst_->instruction_time(*p, offset_.data(), -1);
    }
  }
  offset_[b] = kUndecided;
  pending_index_.activate(b);
  undecided_bytes_ += inst_->size(b);
  time_ = r.time_before;
  return_ = r.return_before;
  --turn_;
  failed_ = false;
  begin_turn();
}

double Game::replay(const int64_t* actions, size_t n) {
  double total = 0.0;
  for (size_t k = 0; k < n; ++k) {
    try {
      total += step(actions[k]);
    } catch (const std::invalid_argument& e) {
      for (size_t j = 0; j < k; ++j) undo();
      std::ostringstream os;
      os << "replay: move " << k << ": " << e.what();
      illegal(os.str());
    }
  }
  return total;
}

void Game::set_offsets(const int64_t* offsets, size_t n) {
  const int32_t nb = inst_->num_buffers();
  if (n != static_cast<size_t>(nb)) {
    std::ostringstream os;
    os << "offsets has " << n << " entries, expected " << nb;
    illegal(os.str());
  }
  Game saved = *this;
  try {
    reset();
    bool undecided = false;
    for (int32_t t = 0; t < nb; ++t) {
      const int32_t b = inst_->buffer_at(t);
      const int64_t off = offsets[b];
      std::ostringstream os;
      os << "buffer " << b << " (turn " << t << "): ";
      if (off == kUndecided) {
        undecided = true;
        continue;
      }
      if (undecided) {
        os << "decided after an undecided buffer; the decided buffers must come first in order";
        illegal(os.str());
      }
      if (off == kSlow) {
        if (inst_->objective() == Objective::kFitAll) {
          os << "slow memory (-1) is not allowed in a fit-all game";
          illegal(os.str());
        }
        place_slow(b);
        continue;
      }
      if (off < 0) {
        os << "offset " << off << " is not -2, -1 or >= 0";
        illegal(os.str());
      }
      if (done()) {
        os << "the game ended (dead end) before this buffer";
        illegal(os.str());
      }
      const int64_t size = inst_->size(b);
      if (off % inst_->alignment() != 0) {
        os << "offset " << off << " is not a multiple of the alignment " << inst_->alignment();
        illegal(os.str());
      }
      if (off > inst_->capacity() || size > inst_->capacity() - off) {
        os << "[" << off << ", " << off << " + " << size << ") exceeds the capacity "
           << inst_->capacity();
        illegal(os.str());
      }
      int32_t clash = -1;
      fast_index_.for_each_overlap(inst_->start(b), inst_->end(b), [&](int32_t p) {
        const int64_t o = offset_[p];
        if (clash < 0 && o < off + size && off < o + inst_->size(p)) clash = p;
      });
      if (clash >= 0) {
        os << "overlaps the conflicting buffer " << clash << " at offset " << offset_[clash];
        illegal(os.str());
      }
      place_fast(b, off);
    }
  } catch (...) {
    *this = std::move(saved);
    throw;
  }
}

double Game::play_first_candidate(bool only_if_it_pays, const int64_t* keep) {
  const bool fit_all = inst_->objective() == Objective::kFitAll;
  double total = 0.0;
  while (!done()) {
    const int32_t b = inst_->buffer_at(turn_);
    bool fast = !cands_.empty() && (fit_all || keep == nullptr || keep[b] != 0);
    if (fast && only_if_it_pays && !fit_all) {
      if (!evaluated_) evaluate_fast(b);
      fast = saved_ > 0.0;
    }
    total += fast ? place_fast(b, cands_[0].offset) : place_slow(b);
  }
  return total;
}

double Game::play_best_fit_keeping(const std::vector<int64_t>& keep) {
  if (keep.size() != static_cast<size_t>(inst_->num_buffers())) {
    std::ostringstream os;
    os << "keep has " << keep.size() << " entries, expected " << inst_->num_buffers();
    illegal(os.str());
  }
  return play_first_candidate(false, keep.data());
}

int64_t Game::peak_in_use() const {
  if (done()) return 0;
  const int32_t b = inst_->buffer_at(turn_);
  return in_use_.max(inst_->segment_begin(b), inst_->segment_end(b));
}

void Game::mark(int32_t b, int64_t offset, bool add) {
  const int32_t leaf = inst_->intervals()->leaf_of(b);
  if (add) {
    fast_index_.activate(b);
    leaf_range_[static_cast<size_t>(leaf)] = {offset, offset + inst_->size(b)};
    leaf_unions_.insert(leaf, leaf_range_[static_cast<size_t>(leaf)]);
    live_unions_.insert(b, inst_->segment_begin(b), inst_->segment_end(b),
                        leaf_range_[static_cast<size_t>(leaf)]);
  } else {
    fast_index_.deactivate(b);
    leaf_unions_.erase(leaf);
    live_unions_.erase(b, inst_->segment_begin(b), inst_->segment_end(b));
  }
  const int64_t delta = add ? inst_->size(b) : -inst_->size(b);
  in_use_.add(inst_->segment_begin(b), inst_->segment_end(b), delta);
}

void Game::paint(int32_t b, int64_t offset, bool add) {
  // Scaled coordinates make every bin boundary an integer: time x = (t - begin) * G, so time bin
  // j is [j * T, (j + 1) * T); address y = a * G, so address bin k is [k * C, (k + 1) * C).
  const int64_t g = inst_->grid();
  const int64_t span = inst_->time_span();
  const int64_t cap = inst_->capacity();
  const int64_t x0 = (inst_->start(b) - inst_->time_begin()) * g;
  const int64_t x1 = (inst_->end(b) - inst_->time_begin()) * g;
  const int64_t y0 = offset * g;
  const int64_t y1 = (offset + inst_->size(b)) * g;
  const double cell_area = static_cast<double>(span) * static_cast<double>(cap);
  for (int64_t j = x0 / span; j <= (x1 - 1) / span; ++j) {
    const int64_t dx = std::min(x1, (j + 1) * span) - std::max(x0, j * span);
    for (int64_t k = y0 / cap; k <= (y1 - 1) / cap; ++k) {
      const int64_t dy = std::min(y1, (k + 1) * cap) - std::max(y0, k * cap);
      const int128_t area = static_cast<int128_t>(dx) * dy;
      const auto c = static_cast<size_t>(j * g + k);
      grid_[c] = add ? grid_[c] + area : grid_[c] - area;
      const double value = static_cast<double>(grid_[c]) / cell_area;
      grid_value_[c] = static_cast<float>(std::min(1.0, std::max(0.0, value)));
    }
  }
}

}  // namespace mallocgame
