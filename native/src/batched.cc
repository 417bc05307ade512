// BatchedGames: the mallocGame's batch (the shared loops are BatchOf's, batched.h).
#include "mallocgame/batched.h"

#include <sstream>
#include <stdexcept>

namespace mallocgame {

BatchedGames::BatchedGames(std::vector<std::shared_ptr<Game>> games)
    : BatchOf<Game>(std::move(games), "BatchedGames") {
  for (size_t i = 0; i < games_.size(); ++i) {
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

}  // namespace mallocgame
