// Game: the mutable state of one mallocGame, with cheap clone() and exact undo() for search.
//
// Turn t presents buffer order[t]. Action 0 leaves it in slow memory; action k in 1..K places it
// at the k-th candidate offset (best fit first). See docs/game.md for the rules.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "mallocgame/block_unions.h"
#include "mallocgame/instance.h"
#include "mallocgame/interval_index.h"
#include "mallocgame/range_max.h"
#include "mallocgame/time_unions.h"

namespace mallocgame {

__extension__ typedef __int128 int128_t;

class Game {
 public:
  static constexpr int64_t kSlow = -1;
  static constexpr int64_t kUndecided = -2;

  struct Candidate {
    int64_t offset;    // aligned start of the placement
    int64_t leftover;  // gap end - (offset + size): the room that stays unused above it
    int64_t gap;       // length of the free gap the candidate lies in
  };

  explicit Game(std::shared_ptr<const Instance> instance);

  const std::shared_ptr<const Instance>& instance() const { return inst_; }
  std::shared_ptr<Game> clone() const { return std::make_shared<Game>(*this); }

  // ---- moves (throw std::invalid_argument on an illegal action or a finished game)
  double step(int64_t action);
  void undo();  // throws std::invalid_argument when there is nothing to undo
  void reset();
  // Steps actions[0..n); on an illegal action, undoes the steps it made and throws.
  double replay(const int64_t* actions, size_t n);
  // Sets the whole state from offsets[B] (>= 0 fast, -1 slow, -2 undecided); the decided
  // buffers must be the first ones of the order and every placement must be feasible.
  void set_offsets(const int64_t* offsets, size_t n);
  // Plays to the end: the best-fit candidate when legal and (objective time) its reward is > 0,
  // else slow memory. Returns the rewards gained.
  double play_greedy() { return play_first_candidate(true); }
  // Plays to the end: the best-fit candidate whenever legal, else slow memory (action 1 if legal
  // else 0, whatever the reward). Returns the rewards gained.
  double play_best_fit() { return play_first_candidate(false); }
  // play_best_fit, except that (objective time) the buffers b with keep[b] == 0 go to slow
  // memory (msa-skip's games). keep has one entry per buffer, else std::invalid_argument.
  double play_best_fit_keeping(const std::vector<int64_t>& keep);

  // ---- state
  bool done() const { return failed_ || turn_ == inst_->num_buffers(); }
  bool failed() const { return failed_; }
  bool solved() const { return turn_ == inst_->num_buffers(); }
  int32_t turn() const { return turn_; }
  int32_t current_buffer() const { return done() ? -1 : inst_->buffer_at(turn_); }
  const std::vector<int64_t>& offsets() const { return offset_; }
  double time() const { return time_; }
  double return_so_far() const { return return_; }
  int64_t fast_bytes_placed() const { return fast_bytes_; }
  int64_t undecided_bytes() const { return undecided_bytes_; }
  size_t history_size() const { return stack_.size(); }

  // ---- the current turn's choices
  const std::vector<Candidate>& candidate_list() const { return cands_; }
  bool is_legal(int64_t action) const;
  void write_candidates(int64_t* out) const;  // [K], -1 padded
  void write_mask(bool* out) const;           // [K + 1]; all false when done
  // Reward that placing the current buffer in fast memory would earn now (capacity ignored);
  // 0 when done.
  double fast_reward();
  // Bytes of [0, capacity) that conflicting fast buffers occupy for the current buffer.
  int64_t blocked_bytes();
  // The most bytes of fast memory in use at one position of the current buffer's live range.
  int64_t peak_in_use() const;

  // ---- observation (implemented in observation.cc)
  void observe(float* out);  // [layout().size]

 private:
  struct Record {
    int32_t buffer;
    int64_t offset;
    double time_before;
    double return_before;
  };

  void begin_turn();
  // Fills gaps_ with the free gaps that can hold b (unsorted) and blocked_.
  void walk_gaps(int32_t b);
  // The best-fit candidate when there is one and (only_if_it_pays, objective time) it saves
  // time and (keep given, objective time) keep[b] != 0; else slow memory.
  double play_first_candidate(bool only_if_it_pays, const int64_t* keep = nullptr);
  // Fills new_times_ with the times of b's instructions were b fast; returns the time saved.
  double evaluate_fast(int32_t b);
  double place_fast(int32_t b, int64_t offset);  // returns the reward
  double place_slow(int32_t b);
  void paint(int32_t b, int64_t offset, bool add);  // occupancy grid
  void mark(int32_t b, int64_t offset, bool add);   // fast_index_, leaf_range_ and in_use_

  std::shared_ptr<const Instance> inst_;
  std::vector<int64_t> offset_;
  std::vector<double> instr_time_;  // always the from-scratch time of each instruction
  std::vector<int128_t> grid_;      // covered area per cell, in scaled units (see paint)
  std::vector<float> grid_value_;   // grid_ / cell area, refreshed for the cells paint touches
  IntervalIndex fast_index_;        // active: the fast buffers
  // (offset, top) of the fast buffer at each leaf of the index, read in leaf order by a walk.
  std::vector<std::pair<int64_t, int64_t>> leaf_range_;
  BlockUnions leaf_unions_;         // the union of leaf_range_ over the active leaves, per block
  TimeUnions live_unions_;          // the fast buffers' ranges by the segments they live on
  IntervalIndex pending_index_;     // active: the undecided buffers
  RangeMax in_use_;                 // fast bytes live on each segment of the schedule
  std::vector<Record> stack_;
  std::vector<Candidate> cands_;
  double time_ = 0.0;
  double return_ = 0.0;
  int64_t fast_bytes_ = 0;
  int64_t undecided_bytes_ = 0;
  int64_t blocked_ = 0;
  bool blocked_known_ = true;  // false: blocked_ is computed when asked for
  int32_t turn_ = 0;
  bool failed_ = false;

  // Caches for the current turn, and scratch space reused across moves.
  bool evaluated_ = false;
  double saved_ = 0.0;
  std::vector<double> new_times_;
  std::vector<std::pair<int64_t, int64_t>> ranges_;  // (offset, top), sorted
  std::vector<std::pair<int64_t, int64_t>> ranges_tmp_;
  std::vector<Candidate> gaps_;
  // observe(): per segment of the buffer
  std::vector<int64_t> pending_all_, pending_denser_, in_use_here_;
};

}  // namespace mallocgame
