// The rank game: choose one rank per part (an attention layer's query-key or value basis) of a
// transformer, in order, under a budget on attention FLOPs (see docs/game.md, "The rank game").
//
// RankInstance holds the tables (immutable, shared); RankGame is the mutable state of one game
// with cheap clone() and exact undo(); BatchedRankGames steps N games in one call writing into
// caller-owned arrays (the bindings release the GIL around it).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "mallocgame/batched.h"

namespace mallocgame {

// Where each part of the rank game's observation lies. The size depends only on C, F and K, not
// on the number of parts, so one network plays models of any depth.
struct RankLayout {
  static constexpr int kGlobalFeatures = 7;

  int num_choices = 0;        // C
  int num_features = 0;       // F: per-part-per-choice features
  int num_part_features = 0;  // K: per-part features
  int choices = 0;            // C * F, row-major [choice][feature]: the current part's
  int legal = 0;              // C: 1 for a legal choice
  int room = 0;               // C: headroom the later parts keep after each choice
  int globals = 0;            // kGlobalFeatures
  int part = 0;               // K: the current part's features
  int rest_mean = 0;          // K: mean of the later parts' features
  int rest_max = 0;           // K: max of the later parts' features
  int rest_choices = 0;       // C * F: mean over the later parts of their choice features
  int size = 0;

  RankLayout() = default;
  RankLayout(int c, int f, int k);
  // (name, (start, length)) for every section and every named global.
  std::vector<std::pair<std::string, std::pair<int, int>>> entries() const;
};

// The inputs of a RankInstance, as flat row-major vectors (the bindings copy numpy arrays in).
struct RankInput {
  int64_t num_parts = 0;          // P
  int64_t num_choices = 0;        // C
  int64_t num_features = 0;       // F
  int64_t num_part_features = 0;  // K
  std::vector<double> cost;           // [P * C], finite, >= 0
  std::vector<float> features;        // [P * C * F], finite
  std::vector<float> part_features;   // [P * K], finite
  std::vector<float> penalty;         // [P * C], finite; empty = zeros
  double budget = 0.0;                // FLOPs, finite, >= 0
  double tolerance = 1e-9;            // relative, in [0, 1e-3]
};

class RankInstance {
 public:
  static constexpr int64_t kMaxChoices = 4096;
  static constexpr int64_t kMaxParts = int64_t{1} << 24;
  static constexpr int64_t kMaxFeatures = 4096;

  // Validates every field and throws std::invalid_argument naming the first problem, including
  // a budget below the cheapest completion.
  explicit RankInstance(RankInput input);

  int32_t num_parts() const { return num_parts_; }
  int32_t num_choices() const { return num_choices_; }
  int32_t num_features() const { return layout_.num_features; }
  int32_t num_part_features() const { return layout_.num_part_features; }
  const RankLayout& layout() const { return layout_; }

  double budget() const { return budget_; }
  double tolerance() const { return tolerance_; }
  // The largest total cost that counts as within budget: budget + tolerance * max(budget, full).
  double limit() const { return limit_; }
  // Sum over parts of the most expensive choice (the divisor of the cost features; 1 if 0).
  double full_cost() const { return full_cost_; }
  double full_cost_raw() const { return full_cost_raw_; }
  // Sum over parts of the cheapest choice: the least any complete game spends.
  double min_total() const { return suffix_min_[0]; }

  double cost(int32_t p, int32_t c) const { return cost_[static_cast<size_t>(p) * num_choices_ + c]; }
  double penalty(int32_t p, int32_t c) const {
    return penalty_[static_cast<size_t>(p) * num_choices_ + c];
  }
  double min_cost(int32_t p) const { return min_cost_[p]; }
  double max_cost(int32_t p) const { return max_cost_[p]; }
  // Sums of the cheapest / dearest choices of parts p..P-1 (0 for p = P), summed from the end.
  double suffix_min(int32_t p) const { return suffix_min_[p]; }
  double suffix_max(int32_t p) const { return suffix_max_[p]; }
  const float* features(int32_t p) const {
    return features_.data() + static_cast<size_t>(p) * num_choices_ * layout_.num_features;
  }
  const float* part_features(int32_t p) const {
    return part_features_.data() + static_cast<size_t>(p) * layout_.num_part_features;
  }
  // Sums / maxima over parts p..P-1 of the per-part and per-choice features (row p of P + 1).
  const double* suffix_part_sum(int32_t p) const {
    return suffix_part_sum_.data() + static_cast<size_t>(p) * layout_.num_part_features;
  }
  const float* suffix_part_max(int32_t p) const {
    return suffix_part_max_.data() + static_cast<size_t>(p) * layout_.num_part_features;
  }
  const double* suffix_choice_sum(int32_t p) const {
    return suffix_choice_sum_.data() +
           static_cast<size_t>(p) * num_choices_ * layout_.num_features;
  }

 private:
  int32_t num_parts_ = 0;
  int32_t num_choices_ = 0;
  RankLayout layout_;
  std::vector<double> cost_;
  std::vector<double> penalty_;
  std::vector<float> features_, part_features_;
  std::vector<double> min_cost_, max_cost_, suffix_min_, suffix_max_;
  std::vector<double> suffix_part_sum_, suffix_choice_sum_;
  std::vector<float> suffix_part_max_;
  double budget_ = 0.0, tolerance_ = 0.0, limit_ = 0.0, full_cost_ = 1.0, full_cost_raw_ = 0.0;
};

class RankGame {
 public:
  static constexpr int32_t kUndecided = -1;

  explicit RankGame(std::shared_ptr<const RankInstance> instance);

  const std::shared_ptr<const RankInstance>& instance() const { return inst_; }
  std::shared_ptr<RankGame> clone() const { return std::make_shared<RankGame>(*this); }

  // ---- moves (std::invalid_argument on an illegal choice or a finished game)
  double step(int64_t choice);  // returns the move's reward, -penalty[part, choice]
  void undo();                  // std::invalid_argument when there is nothing to undo
  void reset();
  // Steps choices[0..n) from the current state; all or nothing.
  double replay(const int64_t* choices, size_t n);

  // ---- state
  bool done() const { return turn_ == inst_->num_parts(); }
  int32_t turn() const { return turn_; }
  int32_t moves_left() const { return inst_->num_parts() - turn_; }
  double spent() const { return spent_; }
  double return_so_far() const { return return_; }
  // Budget minus what is spent minus the cheapest completion: what the remaining moves may use
  // beyond their cheapest choices (>= 0 up to the tolerance).
  double slack() const { return inst_->budget() - spent_ - inst_->suffix_min(turn_); }
  const std::vector<int32_t>& choices() const { return choice_; }  // -1 = undecided
  size_t history_size() const { return static_cast<size_t>(turn_); }

  // ---- the current part's choices
  bool is_legal(int64_t choice) const;
  void write_mask(bool* out) const;  // [C]; all false when done
  void observe(float* out) const;    // [layout().size]

 private:
  struct Record {
    double spent_before;
    double return_before;
  };

  std::shared_ptr<const RankInstance> inst_;
  std::vector<int32_t> choice_;
  std::vector<Record> stack_;
  double spent_ = 0.0;
  double return_ = 0.0;
  int64_t choice_sum_ = 0;
  int32_t turn_ = 0;
};

// N rank games stepped and observed in one call (the shared loops are BatchOf's, batched.h).
// The games are shared with their owners; they may play different instances (e.g. models of
// different depth) that agree on C, F and K.
class BatchedRankGames : public BatchOf<RankGame> {
 public:
  explicit BatchedRankGames(std::vector<std::shared_ptr<RankGame>> games);

  void moves_left(int32_t* out) const;  // [N]: parts left to decide (0 when done)
  // choices[N, width]: each game's choices (-1 undecided, and -1 beyond its number of parts).
  void write_choices(int64_t* out, size_t width) const;
};

}  // namespace mallocgame
