// BatchedGames: N games stepped and observed in one call, writing into caller-owned arrays.
//
// The methods take raw pointers and do no Python work, so the bindings can release the GIL
// around them. The games are shared with their owners (not copied); the games may reference
// different Instances but must agree on the number of actions and the observation size.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "mallocgame/game.h"

namespace mallocgame {

class BatchedGames {
 public:
  // Throws std::invalid_argument for an empty list, a null or repeated game, or games that
  // disagree on num_actions or observation size.
  explicit BatchedGames(std::vector<std::shared_ptr<Game>> games);

  size_t size() const { return games_.size(); }
  int num_actions() const { return num_actions_; }
  int observation_size() const { return observation_size_; }
  const std::shared_ptr<Game>& game(size_t i) const { return games_[i]; }

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
  // then writes obs[N, obs_size], mask[N, K + 1], rewards[N], done[N]. Check first_illegal first.
  template <typename Int>
  void step(const Int* actions, float* obs, bool* mask, float* rewards, bool* done) {
    for (size_t i = 0; i < games_.size(); ++i) {
      Game& g = *games_[i];
      rewards[i] = g.done() ? 0.0f : static_cast<float>(g.step(static_cast<int64_t>(actions[i])));
    }
    observe(obs, mask, done);
  }

  void observe(float* obs, bool* mask, bool* done);
  void reset(const std::vector<size_t>& indices);
  void reset_all();
  std::vector<int64_t> reset_done();  // resets the finished games, returns their indices

 private:
  std::vector<std::shared_ptr<Game>> games_;
  int num_actions_ = 0;
  int observation_size_ = 0;
};

}  // namespace mallocgame
