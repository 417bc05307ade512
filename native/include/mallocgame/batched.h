// BatchedGames: N games stepped and observed in one call, writing into caller-owned arrays.
//
// The methods take raw pointers and do no Python work, so the bindings can release the GIL
// around them. The games are shared with their owners (not copied); the games may reference
// different Instances but must agree on the number of actions and the observation size.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <vector>

#include "mallocgame/game.h"

namespace mallocgame {

// The shared part of a batch of games of type G (Game, RankGame): construction checks, legality
// check, stepping, observing and resetting. G provides done(), is_legal(a), step(a) -> reward,
// observe(float*), write_mask(bool*) and reset().
template <class G>
class BatchOf {
 public:
  size_t size() const { return games_.size(); }
  int num_actions() const { return num_actions_; }
  int observation_size() const { return observation_size_; }
  const std::shared_ptr<G>& game(size_t i) const { return games_[i]; }

  // Index of the first game that is not done and for which actions[i] is illegal, or -1.
  template <typename Int>
  int64_t first_illegal(const Int* actions) const {
    for (size_t i = 0; i < games_.size(); ++i) {
      if (!games_[i]->done() && !games_[i]->is_legal(static_cast<int64_t>(actions[i]))) {
        return static_cast<int64_t>(i);
      }
    }
    return -1;
  }

  // Steps every game that is not done (a done game ignores its action: reward 0, done true),
  // then writes obs[N, obs_size], mask[N, num_actions], rewards[N], done[N]. Check
  // first_illegal first.
  template <typename Int>
  void step(const Int* actions, float* obs, bool* mask, float* rewards, bool* done) {
    for (size_t i = 0; i < games_.size(); ++i) {
      G& g = *games_[i];
      rewards[i] = g.done() ? 0.0f : static_cast<float>(g.step(static_cast<int64_t>(actions[i])));
    }
    observe(obs, mask, done);
  }

  void observe(float* obs, bool* mask, bool* done) {
    const size_t n_obs = static_cast<size_t>(observation_size_);
    const size_t n_act = static_cast<size_t>(num_actions_);
    for (size_t i = 0; i < games_.size(); ++i) {
      G& g = *games_[i];
      g.observe(obs + i * n_obs);
      g.write_mask(mask + i * n_act);
      done[i] = g.done();
    }
  }

  void reset(const std::vector<size_t>& indices) {
    for (size_t i : indices) games_[i]->reset();
  }
  void reset_all() {
    for (auto& g : games_) g->reset();
  }
  std::vector<int64_t> reset_done() {  // resets the finished games, returns their indices
    std::vector<int64_t> out;
    for (size_t i = 0; i < games_.size(); ++i) {
      if (games_[i]->done()) {
        games_[i]->reset();
        out.push_back(static_cast<int64_t>(i));
      }
    }
    return out;
  }

 protected:
  // Throws std::invalid_argument (message starting with `name`) for an empty list, a null or
  // a repeated game. The derived batch sets num_actions_ / observation_size_ and checks that
  // the games agree on them.
  BatchOf(std::vector<std::shared_ptr<G>> games, const std::string& name) : games_(std::move(games)) {
    if (games_.empty()) throw std::invalid_argument(name + " needs at least one game");
    std::unordered_set<const G*> seen;
    for (size_t i = 0; i < games_.size(); ++i) {
      if (!games_[i]) throw std::invalid_argument(name + ": game " + std::to_string(i) + " is None");
      if (!seen.insert(games_[i].get()).second) {
        throw std::invalid_argument(name + ": game " + std::to_string(i) +
                                    " appears twice (clone() it to play it twice)");
      }
    }
  }

  std::vector<std::shared_ptr<G>> games_;
  int num_actions_ = 0;
  int observation_size_ = 0;
};

class BatchedGames : public BatchOf<Game> {
 public:
  // Throws std::invalid_argument for an empty list, a null or repeated game, or games that
  // disagree on num_actions or observation size.
  explicit BatchedGames(std::vector<std::shared_ptr<Game>> games);
};

}  // namespace mallocgame
