// BatchedGames: construction checks and the batched observe / reset loops.
#include "mallocgame/batched.h"

#include <sstream>
#include <stdexcept>
#include <unordered_set>

namespace mallocgame {

BatchedGames::BatchedGames(std::vector<std::shared_ptr<Game>> games) : games_(std::move(games)) {
  if (games_.empty()) throw std::invalid_argument("BatchedGames needs at least one game");
  std::unordered_set<const Game*> seen;
  for (size_t i = 0; i < games_.size(); ++i) {
    if (!games_[i]) throw std::invalid_argument("BatchedGames: game " + std::to_string(i) + " is None");
    if (!seen.insert(games_[i].get()).second) {
      throw std::invalid_argument("BatchedGames: game " + std::to_string(i) +
                                  " appears twice (clone() it to play it twice)");
    }
    const Instance& in = *games_[i]->instance();
    if (i == 0) {
      num_actions_ = in.num_actions();
      observation_size_ = in.layout().size;
    } else if (in.num_actions() != num_actions_ || in.layout().size != observation_size_) {
      std::ostringstream os;
      os << "BatchedGames: game " << i << " has num_actions " << in.num_actions()
         << " and observation size " << in.layout().size << ", game 0 has " << num_actions_
         << " and " << observation_size_ << " (use the same num_candidates and grid)";
      throw std::invalid_argument(os.str());
    }
  }
}

void BatchedGames::observe(float* obs, bool* mask, bool* done) {
  const size_t n_obs = static_cast<size_t>(observation_size_);
  const size_t n_act = static_cast<size_t>(num_actions_);
  for (size_t i = 0; i < games_.size(); ++i) {
    Game& g = *games_[i];
    g.observe(obs + i * n_obs);
    g.write_mask(mask + i * n_act);
    done[i] = g.done();
  }
}

void BatchedGames::reset(const std::vector<size_t>& indices) {
  for (size_t i : indices) games_[i]->reset();
}

void BatchedGames::reset_all() {
  for (auto& g : games_) g->reset();
}

std::vector<int64_t> BatchedGames::reset_done() {
  std::vector<int64_t> out;
  for (size_t i = 0; i < games_.size(); ++i) {
    if (games_[i]->done()) {
      games_[i]->reset();
      out.push_back(static_cast<int64_t>(i));
    }
  }
  return out;
}

}  // namespace mallocgame
