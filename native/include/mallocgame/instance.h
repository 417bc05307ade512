// The immutable description of one mallocGame: buffers, the cost model, the presentation order.
//
// An Instance is built once (validating everything) and shared by many Games through a
// std::shared_ptr<const Instance>. Besides the inputs it holds the precomputed structures that
// make a move cheap: the live ranges sorted by start (an IntervalLayout, which Games index to
// find the buffers live together with one; no per-buffer conflict lists, which grow with the
// square of the number of buffers), per instruction merged access lists and per-buffer lists of
// the instructions a buffer touches. Memory is linear in buffers plus accesses.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "mallocgame/interval_index.h"

namespace mallocgame {

enum class Objective { kTime, kFitAll };

// "time" or "fit-all".
const char* objective_name(Objective objective);
// Throws std::invalid_argument for anything but "time" and "fit-all".
Objective parse_objective(const std::string& name);

// Where each part of the observation vector lies (see docs/game.md).
struct ObservationLayout {
  static constexpr int kBufferFeatures = 11;
  static constexpr int kCandidateFeatures = 4;
  static constexpr int kGlobalFeatures = 6;

  int grid = 0;
  int num_candidates = 0;
  int occupancy = 0;   // grid * grid: [time bin][address bin]
  int live_range = 0;  // grid
  int buffer = 0;      // kBufferFeatures
  int candidates = 0;  // num_candidates * kCandidateFeatures, row-major [k][feature]
  int globals = 0;     // kGlobalFeatures
  int size = 0;

  ObservationLayout() = default;
  ObservationLayout(int grid_bins, int k);
  // (name, (start, length)) for the five sections and for every named scalar feature.
  std::vector<std::pair<std::string, std::pair<int, int>>> entries() const;
};

// The inputs of an Instance, as plain vectors (the bindings copy numpy arrays into it).
struct InstanceInput {
  std::vector<int64_t> sizes, starts, ends;  // [B]
  std::vector<double> instr_flops;           // [I]
  std::vector<int64_t> access_ptr;           // [I + 1]
  std::vector<int64_t> access_buffer;        // [A]
  std::vector<double> access_bytes;          // [A]
  int64_t capacity = 0;
  int64_t alignment = 1;
  double fast_bandwidth = 1.0;
  double slow_bandwidth = 1.0;
  double peak_flops = 1.0;
  std::vector<int64_t> order;  // [B], a permutation of 0..B-1
  int64_t num_candidates = 8;
  Objective objective = Objective::kTime;
  int64_t grid = 16;
};

class Instance {
 public:
  static constexpr int64_t kMaxCandidates = 1024;
  static constexpr int64_t kMaxGrid = 64;

  // Validates every field and throws std::invalid_argument naming the first problem.
  explicit Instance(InstanceInput input);

  // ---- sizes and parameters
  int32_t num_buffers() const { return static_cast<int32_t>(size_.size()); }
  int32_t num_instructions() const { return static_cast<int32_t>(flops_.size()); }
  int64_t capacity() const { return capacity_; }
  int64_t alignment() const { return alignment_; }
  int num_candidates() const { return num_candidates_; }
  int num_actions() const { return num_candidates_ + 1; }
  Objective objective() const { return objective_; }
  int grid() const { return layout_.grid; }
  double fast_bandwidth() const { return fast_bw_; }
  double slow_bandwidth() const { return slow_bw_; }
  double peak_flops() const { return peak_flops_; }
  int64_t total_bytes() const { return total_bytes_; }
  const ObservationLayout& layout() const { return layout_; }

  // ---- cost model
  // Program time with every buffer in slow memory (the upper bound).
  double all_slow_time() const { return all_slow_time_; }
  // Program time with every buffer in fast memory and unlimited capacity (the lower bound).
  double lower_bound_time() const { return lower_bound_time_; }
  // all_slow_time, or 1 when that is 0: the divisor of the "time" rewards.
  double reward_scale() const { return reward_scale_; }
  // Roofline time of instruction i: buffer j counts as fast when offsets[j] >= 0 or j == also_fast.
  double instruction_time(int32_t i, const int64_t* offsets, int32_t also_fast) const;
  // Instructions that access buffer b, ascending and unique.
  const int32_t* touched_begin(int32_t b) const { return touched_.data() + touched_ptr_[b]; }
  const int32_t* touched_end(int32_t b) const { return touched_.data() + touched_ptr_[b + 1]; }

  // ---- static value of each buffer (observation features, docs/game.md)
  // The reward of placing b fast when every other buffer is slow (fit-all: size / total bytes).
  double static_benefit(int32_t b) const { return benefit_[b]; }
  // static_benefit / (size * duration): the reward per byte and schedule position it holds.
  double density(int32_t b) const { return density_[b]; }
  // The fraction of all buffers whose density is strictly below b's, in [0, 1).
  double density_rank(int32_t b) const { return density_rank_[b]; }
  // The mean static_benefit over all buffers.
  double mean_benefit() const { return mean_benefit_; }

  // ---- buffers
  int64_t size(int32_t b) const { return size_[b]; }
  int64_t start(int32_t b) const { return start_[b]; }
  int64_t end(int32_t b) const { return end_[b]; }
  int32_t buffer_at(int32_t turn) const { return order_[turn]; }
  int32_t rank_of(int32_t b) const { return rank_[b]; }
  const std::vector<int32_t>& order() const { return order_; }
  // The schedule's extent: [time_begin, time_begin + time_span) covers every live range.
  int64_t time_begin() const { return time_begin_; }
  int64_t time_span() const { return time_span_; }
  // Segments between consecutive distinct start/end positions: the set of live buffers is
  // constant on each; buffer b covers segments [segment_begin(b), segment_end(b)).
  int32_t num_segments() const { return num_segments_; }
  int32_t segment_begin(int32_t b) const { return segment_begin_[b]; }
  int32_t segment_end(int32_t b) const { return segment_end_[b]; }

  // ---- conflicts (buffers whose live ranges overlap b's)
  // How many other buffers are live at some position of b's live range (O(1), precomputed by
  // binary search over the sorted starts and ends).
  int32_t num_conflicts(int32_t b) const { return num_conflicts_[b]; }
  // Those buffers, sorted by presentation rank (a scan of every buffer; for inspection and
  // tests).
  std::vector<int32_t> conflicts(int32_t b) const;
  // The live ranges sorted by start, shared by every IntervalIndex over this instance's buffers.
  const std::shared_ptr<const IntervalLayout>& intervals() const { return intervals_; }

 private:
  void validate_and_copy(InstanceInput& in);
  void build_intervals();
  void build_accesses(const InstanceInput& in);
  void build_segments();
  void build_values();

  std::vector<int64_t> size_, start_, end_;
  std::vector<double> flops_;
  std::vector<int32_t> order_, rank_;
  int64_t capacity_ = 0, alignment_ = 1;
  double fast_bw_ = 1.0, slow_bw_ = 1.0, peak_flops_ = 1.0;
  int num_candidates_ = 1;
  Objective objective_ = Objective::kTime;
  ObservationLayout layout_;
  int64_t total_bytes_ = 0;
  int64_t time_begin_ = 0, time_span_ = 1;
  int32_t num_segments_ = 0;
  std::vector<int32_t> segment_begin_, segment_end_;

  // Merged accesses by instruction (CSR, ascending buffer within an instruction).
  std::vector<int64_t> instr_ptr_;
  std::vector<int32_t> instr_buffer_;
  std::vector<double> instr_bytes_;
  // Instructions by buffer (CSR).
  std::vector<int64_t> touched_ptr_;
  std::vector<int32_t> touched_;
  // The live ranges indexed by start.
  std::shared_ptr<const IntervalLayout> intervals_;
  std::vector<int32_t> num_conflicts_;

  double all_slow_time_ = 0.0, lower_bound_time_ = 0.0, reward_scale_ = 1.0;
  std::vector<double> benefit_, density_, density_rank_;
  double mean_benefit_ = 0.0;
};

}  // namespace mallocgame
