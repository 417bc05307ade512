// Game::observe: the fixed-size observation vector (layout in docs/game.md).
#include <algorithm>
#include <cmath>

#include "mallocgame/game.h"

namespace mallocgame {
namespace {

float clamp(double x, double lo, double hi) {
  return static_cast<float>(std::min(hi, std::max(lo, x)));
}

}  // namespace

void Game::observe(float* out) {
  const Instance& in = *inst_;
  const ObservationLayout& L = in.layout();
  std::fill(out, out + L.size, 0.0f);
  const int64_t g = L.grid;
  const int64_t span = in.time_span();
  const int64_t cap = in.capacity();
  const double capd = cap > 0 ? static_cast<double>(cap) : 1.0;

  // (a) Occupancy: covered fraction of each [time bin][address bin] cell (kept up to date by
  // Game::paint from the exact integer areas).
  std::copy(grid_value_.begin(), grid_value_.end(), out + L.occupancy);

  // (e) Globals that exist also when the game is over.
  float* glob = out + L.globals;
  glob[0] = static_cast<float>(static_cast<double>(turn_) / in.num_buffers());
  glob[1] = static_cast<float>(static_cast<double>(undecided_bytes_) / static_cast<double>(in.total_bytes()));
  glob[2] = clamp(time_ / in.reward_scale(), 0.0, 4.0);
  glob[5] = in.objective() == Objective::kFitAll ? 1.0f : 0.0f;
  if (done()) return;

  const int32_t b = in.buffer_at(turn_);
  const int64_t size = in.size(b);
  const int64_t st = in.start(b), en = in.end(b);
  glob[3] = clamp(static_cast<double>(peak_in_use()) / capd, 0.0, 1.0);
  glob[4] = clamp(static_cast<double>(blocked_bytes()) / capd, 0.0, 1.0);

  // (b) The current buffer's live range per time bin.
  const int64_t x0 = (st - in.time_begin()) * g;
  const int64_t x1 = (en - in.time_begin()) * g;
  for (int64_t j = x0 / span; j <= (x1 - 1) / span; ++j) {
    const int64_t dx = std::min(x1, (j + 1) * span) - std::max(x0, j * span);
    out[L.live_range + j] = static_cast<float>(static_cast<double>(dx) / static_cast<double>(span));
  }

  // (c) The current buffer.
  const double spand = static_cast<double>(span);
  float* buf = out + L.buffer;
  buf[0] = cap > 0 ? clamp(static_cast<double>(size) / capd, 0.0, 1.0) : 1.0f;
  buf[1] = static_cast<float>(std::log2(static_cast<double>(size)) / 40.0);
  buf[2] = static_cast<float>(static_cast<double>(st - in.time_begin()) / spand);
  buf[3] = static_cast<float>(static_cast<double>(en - in.time_begin()) / spand);
  buf[4] = static_cast<float>(static_cast<double>(en - st) / spand);
  const double reward = fast_reward();
  buf[5] = clamp(reward, -1.0, 1.0);
  buf[6] = static_cast<float>(static_cast<double>(in.num_conflicts(b)) / in.num_buffers());
  // Scale-free value features: where b's density ranks among all buffers, its reward now against
  // the mean static benefit (log2, 1/16 per doubling), and how much fast memory b's live range
  // would need for what is in use plus the undecided buffers that conflict with b (contention:
  // only those of higher density, which deserve the room more; pressure: all of them).
  buf[7] = static_cast<float>(in.density_rank(b));
  buf[8] = reward > 0.0 && in.mean_benefit() > 0.0
               ? clamp(std::log2(reward / in.mean_benefit()) / 16.0, -1.0, 1.0)
               : -1.0f;
  const int32_t s0 = in.segment_begin(b), s1 = in.segment_end(b);
  pending_all_.assign(static_cast<size_t>(s1 - s0 + 1), 0);
  pending_denser_.assign(static_cast<size_t>(s1 - s0 + 1), 0);
  const double density = in.density(b);
  pending_index_.for_each_overlap(st, en, [&](int32_t c) {
    if (c == b) return;
    const int32_t a0 = std::max(s0, in.segment_begin(c)) - s0;
    const int32_t a1 = std::min(s1, in.segment_end(c)) - s0;
    if (a0 >= a1) return;
    pending_all_[a0] += in.size(c);
    pending_all_[a1] -= in.size(c);
    if (in.density(c) > density) {
      pending_denser_[a0] += in.size(c);
      pending_denser_[a1] -= in.size(c);
    }
  });
  in_use_here_.resize(static_cast<size_t>(s1 - s0));
  in_use_.values(s0, s1, in_use_here_.data());
  int64_t run_all = 0, run_denser = 0, peak_all = 0, peak_denser = 0;
  for (int32_t k = 0; k < s1 - s0; ++k) {
    run_all += pending_all_[k];
    run_denser += pending_denser_[k];
    peak_all = std::max(peak_all, in_use_here_[k] + run_all);
    peak_denser = std::max(peak_denser, in_use_here_[k] + run_denser);
  }
  buf[9] = clamp(static_cast<double>(peak_denser) / capd, 0.0, 4.0);
  buf[10] = clamp(static_cast<double>(peak_all) / capd, 0.0, 4.0);

  // (d) The candidates, best fit first.
  for (size_t k = 0; k < cands_.size(); ++k) {
    float* c = out + L.candidates + k * ObservationLayout::kCandidateFeatures;
    c[0] = 1.0f;
    c[1] = static_cast<float>(static_cast<double>(cands_[k].offset) / capd);
    c[2] = static_cast<float>(static_cast<double>(cands_[k].leftover) / capd);
    c[3] = static_cast<float>(static_cast<double>(cands_[k].gap) / capd);
  }
}

}  // namespace mallocgame
