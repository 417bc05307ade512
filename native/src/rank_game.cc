// The rank game: RankInstance validation, RankGame moves / undo / observation, BatchedRankGames.
#include "mallocgame/rank_game.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace mallocgame {
namespace {

// Numbers in messages: the shortest text that reads back to the same double.
template <typename T>
void put(std::ostringstream& os, const T& x) {
  os << x;
}
void put(std::ostringstream& os, double x) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof(buf), x);
  os.write(buf, r.ptr - buf);
}
void put(std::ostringstream& os, float x) { put(os, static_cast<double>(x)); }

template <typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  std::ostringstream os;
  (put(os, parts), ...);
  throw std::invalid_argument(os.str());
}

float clamp(double x, double lo, double hi) {
  return static_cast<float>(std::min(hi, std::max(lo, x)));
}

// Index [p, c] or [p, c, f] of a flat row-major position, for error messages.
std::string where(size_t i, int64_t d1, int64_t d2 = 0) {
  std::ostringstream os;
  if (d2 > 0) {
    os << "[" << i / static_cast<size_t>(d1 * d2) << ", " << (i / static_cast<size_t>(d2)) % d1
       << ", " << i % static_cast<size_t>(d2) << "]";
  } else {
    os << "[" << i / static_cast<size_t>(d1) << ", " << i % static_cast<size_t>(d1) << "]";
  }
  return os.str();
}

template <typename T>
void check_finite(const char* field, const std::vector<T>& v, int64_t d1, int64_t d2 = 0) {
  for (size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i])) fail(field, where(i, d1, d2), " is ", v[i], "; it must be finite");
  }
}

}  // namespace

// ------------------------------------------------------------------------------- RankLayout
RankLayout::RankLayout(int c, int f, int k) : num_choices(c), num_features(f), num_part_features(k) {
  choices = 0;
  legal = choices + c * f;
  room = legal + c;
  globals = room + c;
  part = globals + kGlobalFeatures;
  rest_mean = part + k;
  rest_max = rest_mean + k;
  rest_choices = rest_max + k;
  size = rest_choices + c * f;
}

std::vector<std::pair<std::string, std::pair<int, int>>> RankLayout::entries() const {
  std::vector<std::pair<std::string, std::pair<int, int>>> out = {
      {"choices", {choices, num_choices * num_features}},
      {"legal", {legal, num_choices}},
      {"room", {room, num_choices}},
      {"globals", {globals, kGlobalFeatures}},
      {"part", {part, num_part_features}},
      {"rest_mean", {rest_mean, num_part_features}},
      {"rest_max", {rest_max, num_part_features}},
      {"rest_choices", {rest_choices, num_choices * num_features}},
  };
  const char* names[kGlobalFeatures] = {"budget_left", "parts_left",  "slack",     "headroom",
                                        "prev_choice", "mean_choice", "part_share"};
  for (int g = 0; g < kGlobalFeatures; ++g) {
    out.push_back({std::string("globals.") + names[g], {globals + g, 1}});
  }
  return out;
}

// ----------------------------------------------------------------------------- RankInstance
RankInstance::RankInstance(RankInput in) {
  const int64_t P = in.num_parts, C = in.num_choices, F = in.num_features, K = in.num_part_features;
  if (P < 1 || P > kMaxParts) fail("the rank game needs 1..", kMaxParts, " parts, got ", P);
  if (C < 1 || C > kMaxChoices) fail("the rank game needs 1..", kMaxChoices, " choices, got ", C);
  if (F < 0 || F > kMaxFeatures) fail("num_features must be in [0, ", kMaxFeatures, "], got ", F);
  if (K < 0 || K > kMaxFeatures) fail("num_part_features must be in [0, ", kMaxFeatures, "], got ", K);
  const size_t pc = static_cast<size_t>(P * C);
  if (in.cost.size() != pc) fail("cost has ", in.cost.size(), " entries, expected P * C = ", pc);
  if (in.features.size() != pc * static_cast<size_t>(F)) {
    fail("features has ", in.features.size(), " entries, expected P * C * F = ", pc * F);
  }
  if (in.part_features.size() != static_cast<size_t>(P * K)) {
    fail("part_features has ", in.part_features.size(), " entries, expected P * K = ", P * K);
  }
  if (!in.penalty.empty() && in.penalty.size() != pc) {
    fail("penalty has ", in.penalty.size(), " entries, expected P * C = ", pc);
  }
  for (size_t i = 0; i < pc; ++i) {
    const double x = in.cost[i];
    if (!std::isfinite(x) || x < 0.0) {
      fail("cost", where(i, C), " is ", x, "; costs must be finite and >= 0");
    }
  }
  check_finite("features", in.features, C, F);
  check_finite("part_features", in.part_features, K);
  check_finite("penalty", in.penalty, C);
  if (!std::isfinite(in.budget) || in.budget < 0.0) {
    fail("budget must be a finite number of FLOPs >= 0, got ", in.budget);
  }
  if (!(in.tolerance >= 0.0 && in.tolerance <= 1e-3)) {
    fail("tolerance must be in [0, 1e-3], got ", in.tolerance);
  }

  num_parts_ = static_cast<int32_t>(P);
  num_choices_ = static_cast<int32_t>(C);
  layout_ = RankLayout(static_cast<int>(C), static_cast<int>(F), static_cast<int>(K));
  cost_ = std::move(in.cost);
  features_ = std::move(in.features);
  part_features_ = std::move(in.part_features);
  penalty_.assign(pc, 0.0);
  for (size_t i = 0; i < in.penalty.size(); ++i) penalty_[i] = static_cast<double>(in.penalty[i]);
  budget_ = in.budget;
  tolerance_ = in.tolerance;

  min_cost_.assign(static_cast<size_t>(P), 0.0);
  max_cost_.assign(static_cast<size_t>(P), 0.0);
  for (int32_t p = 0; p < num_parts_; ++p) {
    const double* row = cost_.data() + static_cast<size_t>(p) * C;
    min_cost_[p] = *std::min_element(row, row + C);
    max_cost_[p] = *std::max_element(row, row + C);
  }
  // Suffix sums from the end: suffix_min_[p] = min_cost_[p] + suffix_min_[p + 1].
  suffix_min_.assign(static_cast<size_t>(P) + 1, 0.0);
  suffix_max_.assign(static_cast<size_t>(P) + 1, 0.0);
  for (int32_t p = num_parts_ - 1; p >= 0; --p) {
    suffix_min_[p] = min_cost_[p] + suffix_min_[p + 1];
    suffix_max_[p] = max_cost_[p] + suffix_max_[p + 1];
  }
  if (!std::isfinite(suffix_max_[0])) fail("the costs sum to infinity");
  full_cost_raw_ = suffix_max_[0];
  full_cost_ = full_cost_raw_ > 0.0 ? full_cost_raw_ : 1.0;
  limit_ = budget_ + tolerance_ * std::max(budget_, full_cost_raw_);
  if (suffix_min_[0] > limit_) {
    fail("budget ", budget_, " FLOPs is below the minimum ", suffix_min_[0],
         " FLOPs (every part at its cheapest choice): no configuration fits");
  }

  // Suffix statistics of the features, for the observation's summary of the later parts.
  const size_t cf = static_cast<size_t>(C * F);
  suffix_part_sum_.assign(static_cast<size_t>((P + 1) * K), 0.0);
  suffix_part_max_.assign(static_cast<size_t>((P + 1) * K), -std::numeric_limits<float>::infinity());
  suffix_choice_sum_.assign((static_cast<size_t>(P) + 1) * cf, 0.0);
  for (int32_t p = num_parts_ - 1; p >= 0; --p) {
    const size_t k0 = static_cast<size_t>(p) * K, k1 = k0 + K;
    for (int64_t k = 0; k < K; ++k) {
      suffix_part_sum_[k0 + k] = part_features_[k0 + k] + suffix_part_sum_[k1 + k];
      suffix_part_max_[k0 + k] = std::max(part_features_[k0 + k], suffix_part_max_[k1 + k]);
    }
    const size_t c0 = static_cast<size_t>(p) * cf, c1 = c0 + cf;
    for (size_t j = 0; j < cf; ++j) suffix_choice_sum_[c0 + j] = features_[c0 + j] + suffix_choice_sum_[c1 + j];
  }
}

// --------------------------------------------------------------------------------- RankGame
RankGame::RankGame(std::shared_ptr<const RankInstance> instance) : inst_(std::move(instance)) {
  if (!inst_) fail("RankGame needs a RankInstance, got None");
  choice_.assign(static_cast<size_t>(inst_->num_parts()), kUndecided);
  stack_.reserve(static_cast<size_t>(inst_->num_parts()));
  reset();
}

void RankGame::reset() {
  std::fill(choice_.begin(), choice_.end(), kUndecided);
  stack_.clear();
  spent_ = 0.0;
  return_ = 0.0;
  choice_sum_ = 0;
  turn_ = 0;
}

bool RankGame::is_legal(int64_t choice) const {
  if (done() || choice < 0 || choice >= inst_->num_choices()) return false;
  const auto c = static_cast<int32_t>(choice);
  const double cost = inst_->cost(turn_, c);
  // A cheapest choice is always legal: the check of the previous move guarantees that it fits
  // (up to rounding, which must not leave a game without a legal move).
  if (cost == inst_->min_cost(turn_)) return true;
  return (spent_ + cost) + inst_->suffix_min(turn_ + 1) <= inst_->limit();
}

void RankGame::write_mask(bool* out) const {
  const int32_t C = inst_->num_choices();
  for (int32_t c = 0; c < C; ++c) out[c] = is_legal(c);
}

double RankGame::step(int64_t choice) {
  if (done()) fail("the game is over (all ", inst_->num_parts(), " parts are decided)");
  if (choice < 0 || choice >= inst_->num_choices()) {
    fail("choice ", choice, " is out of range [0, ", inst_->num_choices(), ")");
  }
  const auto c = static_cast<int32_t>(choice);
  if (!is_legal(choice)) {
    fail("choice ", choice, " for part ", turn_, " is over budget: spent ", spent_, " + cost ",
         inst_->cost(turn_, c), " + cheapest completion ", inst_->suffix_min(turn_ + 1), " > budget ",
         inst_->budget());
  }
  stack_.push_back({spent_, return_});
  const double reward = -inst_->penalty(turn_, c);
  spent_ += inst_->cost(turn_, c);
  return_ += reward;
  choice_[turn_] = c;
  choice_sum_ += c;
  ++turn_;
  return reward;
}

void RankGame::undo() {
  if (stack_.empty()) fail("nothing to undo");
  const Record r = stack_.back();
  stack_.pop_back();
  --turn_;
  choice_sum_ -= choice_[turn_];
  choice_[turn_] = kUndecided;
  spent_ = r.spent_before;
  return_ = r.return_before;
}

double RankGame::replay(const int64_t* choices, size_t n) {
  double total = 0.0;
  for (size_t k = 0; k < n; ++k) {
    try {
      total += step(choices[k]);
    } catch (const std::invalid_argument& e) {
      for (size_t j = 0; j < k; ++j) undo();
      fail("replay: move ", k, ": ", e.what());
    }
  }
  return total;
}

void RankGame::observe(float* out) const {
  const RankInstance& in = *inst_;
  const RankLayout& L = in.layout();
  std::fill(out, out + L.size, 0.0f);
  const int32_t P = in.num_parts(), C = in.num_choices();
  const int F = L.num_features, K = L.num_part_features;
  const double full = in.full_cost();

  float* glob = out + L.globals;
  glob[0] = clamp((in.budget() - spent_) / full, 0.0, 4.0);
  glob[1] = static_cast<float>(static_cast<double>(P - turn_) / P);
  if (turn_ > 0 && C > 1) {
    glob[4] = static_cast<float>(static_cast<double>(choice_[turn_ - 1]) / (C - 1));
    glob[5] = static_cast<float>(static_cast<double>(choice_sum_) / (static_cast<double>(turn_) * (C - 1)));
  }
  if (done()) return;

  const int32_t t = turn_;
  const double slack = this->slack();
  const double spread = in.suffix_max(t) - in.suffix_min(t);
  glob[2] = clamp(slack / full, 0.0, 4.0);
  glob[3] = spread > 0.0 ? clamp(slack / spread, 0.0, 1.0) : 1.0f;
  glob[6] = spread > 0.0 ? clamp((in.max_cost(t) - in.min_cost(t)) / spread, 0.0, 1.0) : 0.0f;

  const float* feats = in.features(t);
  std::copy(feats, feats + static_cast<size_t>(C) * F, out + L.choices);
  const double rest_spread = in.suffix_max(t + 1) - in.suffix_min(t + 1);
  for (int32_t c = 0; c < C; ++c) {
    const bool legal = is_legal(c);
    out[L.legal + c] = legal ? 1.0f : 0.0f;
    const double left = in.budget() - (spent_ + in.cost(t, c)) - in.suffix_min(t + 1);
    out[L.room + c] = rest_spread > 0.0 ? clamp(left / rest_spread, -1.0, 1.0) : (legal ? 1.0f : -1.0f);
  }
  const float* pf = in.part_features(t);
  std::copy(pf, pf + K, out + L.part);
  const int32_t rest = P - t - 1;
  if (rest > 0) {
    const double* ps = in.suffix_part_sum(t + 1);
    const float* pm = in.suffix_part_max(t + 1);
    for (int k = 0; k < K; ++k) {
      out[L.rest_mean + k] = static_cast<float>(ps[k] / rest);
      out[L.rest_max + k] = pm[k];
    }
    const double* cs = in.suffix_choice_sum(t + 1);
    for (int j = 0; j < C * F; ++j) out[L.rest_choices + j] = static_cast<float>(cs[j] / rest);
  }
}

// ------------------------------------------------------------------------- BatchedRankGames
BatchedRankGames::BatchedRankGames(std::vector<std::shared_ptr<RankGame>> games)
    : BatchOf<RankGame>(std::move(games), "BatchedRankGames") {
  for (size_t i = 0; i < games_.size(); ++i) {
    const RankLayout& L = games_[i]->instance()->layout();
    if (i == 0) {
      num_actions_ = L.num_choices;
      observation_size_ = L.size;
    } else if (L.num_choices != num_actions_ || L.size != observation_size_) {
      fail("BatchedRankGames: game ", i, " has ", L.num_choices, " choices and observation size ",
           L.size, ", game 0 has ", num_actions_, " and ", observation_size_,
           " (the games must agree on the number of choices and of features)");
    }
  }
}

void BatchedRankGames::moves_left(int32_t* out) const {
  for (size_t i = 0; i < games_.size(); ++i) out[i] = games_[i]->moves_left();
}

void BatchedRankGames::write_choices(int64_t* out, size_t width) const {
  for (size_t i = 0; i < games_.size(); ++i) {
    const std::vector<int32_t>& ch = games_[i]->choices();
    for (size_t j = 0; j < width; ++j) out[i * width + j] = j < ch.size() ? ch[j] : -1;
  }
}

}  // namespace mallocgame
