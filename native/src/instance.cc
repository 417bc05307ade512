// Instance: validation, the interval layout and conflict counts, access lists, the roofline
// cost model.
#include "mallocgame/instance.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <sstream>
#include <stdexcept>

namespace mallocgame {
namespace {

// Bound on positions, offsets and byte counts: keeps every sum and scaled coordinate in int64.
constexpr int64_t kMaxMagnitude = int64_t{1} << 60;
constexpr int64_t kMaxScaled = int64_t{1} << 62;

template <typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  throw std::invalid_argument(os.str());
}

void check_length(const char* field, size_t got, size_t want) {
  if (got != want) fail(field, " has ", got, " entries, expected ", want);
}

}  // namespace

const char* objective_name(Objective objective) {
  return objective == Objective::kTime ? "time" : "fit-all";
}

Objective parse_objective(const std::string& name) {
  if (name == "time") return Objective::kTime;
  if (name == "fit-all") return Objective::kFitAll;
  fail("objective must be 'time' or 'fit-all', got '", name, "'");
}

ObservationLayout::ObservationLayout(int grid_bins, int k) : grid(grid_bins), num_candidates(k) {
  occupancy = 0;
  live_range = occupancy + grid * grid;
  buffer = live_range + grid;
  candidates = buffer + kBufferFeatures;
  globals = candidates + num_candidates * kCandidateFeatures;
  size = globals + kGlobalFeatures;
}

std::vector<std::pair<std::string, std::pair<int, int>>> ObservationLayout::entries() const {
  std::vector<std::pair<std::string, std::pair<int, int>>> out = {
      {"occupancy", {occupancy, grid * grid}},
      {"live_range", {live_range, grid}},
      {"buffer", {buffer, kBufferFeatures}},
      {"candidates", {candidates, num_candidates * kCandidateFeatures}},
      {"globals", {globals, kGlobalFeatures}},
  };
  const char* buffer_names[kBufferFeatures] = {"size",       "log2_size",    "start",
                                               "end",        "duration",     "benefit",
                                               "conflicts",  "density_rank", "benefit_rel",
                                               "contention", "pressure"};
  for (int f = 0; f < kBufferFeatures; ++f) {
    out.push_back({std::string("buffer.") + buffer_names[f], {buffer + f, 1}});
  }
  const char* candidate_names[kCandidateFeatures] = {"valid", "offset", "leftover", "gap"};
  for (int f = 0; f < kCandidateFeatures; ++f) {
    // Strided: feature f of candidate k lies at start + k * kCandidateFeatures.
    out.push_back({std::string("candidates.") + candidate_names[f], {candidates + f, num_candidates}});
  }
  const char* global_names[kGlobalFeatures] = {"turn", "remaining_bytes", "time",
                                               "peak_in_use", "blocked", "fit_all"};
  for (int f = 0; f < kGlobalFeatures; ++f) {
    out.push_back({std::string("globals.") + global_names[f], {globals + f, 1}});
  }
  return out;
}

Instance::Instance(InstanceInput input) {
  validate_and_copy(input);
  build_intervals();
  build_accesses(input);
  build_segments();

  const int32_t n = num_buffers();
  std::vector<int64_t> none(static_cast<size_t>(n), -2);
  std::vector<int64_t> all(static_cast<size_t>(n), 0);
  all_slow_time_ = 0.0;
  lower_bound_time_ = 0.0;
  for (int32_t i = 0; i < num_instructions(); ++i) {
    all_slow_time_ += instruction_time(i, none.data(), -1);
    lower_bound_time_ += instruction_time(i, all.data(), -1);
  }
  if (!std::isfinite(all_slow_time_)) {
    fail("the program time with every buffer slow is not finite: slow_bandwidth, fast_bandwidth "
         "or peak_flops is too small for the bytes and flops");
  }
  if (!std::isfinite(lower_bound_time_)) {  // a mixed placement costs at most the sum of both
    fail("the program time with every buffer fast is not finite: fast_bandwidth or peak_flops "
         "is too small for the bytes and flops");
  }
  reward_scale_ = all_slow_time_ > 0.0 ? all_slow_time_ : 1.0;
  build_values();
}

void Instance::build_values() {
  // Summed in the same order as Game::evaluate_fast on the all-slow state, so that the static
  // benefit equals the first turn's fast_reward bit for bit (the reference game relies on it).
  const int32_t n = num_buffers();
  std::vector<int64_t> none(static_cast<size_t>(n), -2);
  std::vector<double> slow(static_cast<size_t>(num_instructions()));
  for (int32_t i = 0; i < num_instructions(); ++i) slow[i] = instruction_time(i, none.data(), -1);
  benefit_.assign(static_cast<size_t>(n), 0.0);
  density_.assign(static_cast<size_t>(n), 0.0);
  double total = 0.0;
  for (int32_t b = 0; b < n; ++b) {
    double value;
    if (objective_ == Objective::kFitAll) {
      value = static_cast<double>(size_[b]) / static_cast<double>(total_bytes_);
    } else {
      double saved = 0.0;
      for (const int32_t* p = touched_begin(b); p != touched_end(b); ++p) {
        saved += slow[*p] - instruction_time(*p, none.data(), b);
      }
      value = saved / reward_scale_;
    }
    benefit_[b] = value;
    total += value;
    density_[b] = value / (static_cast<double>(size_[b]) * static_cast<double>(end_[b] - start_[b]));
  }
  mean_benefit_ = total / n;
  std::vector<double> sorted = density_;
  std::sort(sorted.begin(), sorted.end());
  density_rank_.assign(static_cast<size_t>(n), 0.0);
  for (int32_t b = 0; b < n; ++b) {
    const auto below = std::lower_bound(sorted.begin(), sorted.end(), density_[b]) - sorted.begin();
    density_rank_[b] = static_cast<double>(below) / n;
  }
}

void Instance::validate_and_copy(InstanceInput& in) {
  const size_t n = in.sizes.size();
  if (n == 0) fail("a game needs at least one buffer (sizes is empty)");
  if (n > static_cast<size_t>(std::numeric_limits<int32_t>::max() / 2)) fail("too many buffers: ", n);
  check_length("starts", in.starts.size(), n);
  check_length("ends", in.ends.size(), n);
  check_length("order", in.order.size(), n);
  for (size_t b = 0; b < n; ++b) {
    const int64_t s = in.sizes[b], st = in.starts[b], en = in.ends[b];
    if (s <= 0) fail("buffer ", b, " has non-positive size ", s);
    if (s > kMaxMagnitude) fail("buffer ", b, " has size ", s, " beyond the supported 2^60");
    if (st < -kMaxMagnitude || st > kMaxMagnitude || en < -kMaxMagnitude || en > kMaxMagnitude) {
      fail("buffer ", b, " has a live range [", st, ", ", en, ") beyond the supported +-2^60");
    }
    if (en <= st) fail("buffer ", b, " has an empty or inverted live range [", st, ", ", en, ")");
    if (total_bytes_ > kMaxMagnitude - s) fail("total bytes exceed the supported 2^60");
    total_bytes_ += s;
  }

  if (in.capacity < 0) fail("capacity must be >= 0, got ", in.capacity);
  if (in.alignment < 1) fail("alignment must be >= 1, got ", in.alignment);
  if (in.capacity > kMaxMagnitude || in.alignment > kMaxMagnitude) {
    fail("capacity and alignment must be at most 2^60");
  }
  if (!(in.fast_bandwidth > 0.0) || std::isnan(in.fast_bandwidth)) {
    fail("fast_bandwidth must be > 0, got ", in.fast_bandwidth);
  }
  if (!(in.slow_bandwidth > 0.0) || std::isnan(in.slow_bandwidth)) {
    fail("slow_bandwidth must be > 0, got ", in.slow_bandwidth);
  }
  if (!(in.peak_flops > 0.0) || std::isnan(in.peak_flops)) {
    fail("peak_flops must be > 0, got ", in.peak_flops);
  }
  if (in.num_candidates < 1 || in.num_candidates > kMaxCandidates) {
    fail("num_candidates must be in [1, ", kMaxCandidates, "], got ", in.num_candidates);
  }
  if (in.grid < 1 || in.grid > kMaxGrid) fail("grid must be in [1, ", kMaxGrid, "], got ", in.grid);

  // The presentation order must be a permutation.
  order_.assign(n, 0);
  rank_.assign(n, -1);
  for (size_t t = 0; t < n; ++t) {
    const int64_t b = in.order[t];
    if (b < 0 || b >= static_cast<int64_t>(n)) {
      fail("order is not a permutation of 0..", n - 1, ": order[", t, "] = ", b, " is out of range");
    }
    if (rank_[b] >= 0) {
      fail("order is not a permutation of 0..", n - 1, ": buffer ", b, " appears twice");
    }
    rank_[b] = static_cast<int32_t>(t);
    order_[t] = static_cast<int32_t>(b);
  }

  // The timeline, for the observation's time bins.
  const int64_t lo = *std::min_element(in.starts.begin(), in.starts.end());
  const int64_t hi = *std::max_element(in.ends.begin(), in.ends.end());
  time_begin_ = lo;
  time_span_ = hi - lo;  // >= 1, <= 2^61
  if (time_span_ > kMaxScaled / in.grid) fail("the schedule is too long for grid ", in.grid);
  if (in.capacity > kMaxScaled / in.grid) fail("capacity is too large for grid ", in.grid);

  size_ = std::move(in.sizes);
  start_ = std::move(in.starts);
  end_ = std::move(in.ends);
  capacity_ = in.capacity;
  alignment_ = in.alignment;
  fast_bw_ = in.fast_bandwidth;
  slow_bw_ = in.slow_bandwidth;
  peak_flops_ = in.peak_flops;
  num_candidates_ = static_cast<int>(in.num_candidates);
  objective_ = in.objective;
  layout_ = ObservationLayout(static_cast<int>(in.grid), num_candidates_);

  // Instructions.
  const size_t m = in.instr_flops.size();
  if (m > static_cast<size_t>(std::numeric_limits<int32_t>::max() / 2)) fail("too many instructions");
  for (size_t i = 0; i < m; ++i) {
    const double f = in.instr_flops[i];
    if (!std::isfinite(f) || f < 0.0) fail("instr_flops[", i, "] must be finite and >= 0, got ", f);
  }
  check_length("access_ptr", in.access_ptr.size(), m + 1);
  if (in.access_ptr[0] != 0) fail("access_ptr[0] must be 0, got ", in.access_ptr[0]);
  for (size_t i = 0; i < m; ++i) {
    if (in.access_ptr[i + 1] < in.access_ptr[i]) fail("access_ptr decreases at index ", i + 1);
  }
  const size_t a = in.access_buffer.size();
  if (static_cast<uint64_t>(in.access_ptr[m]) != a) {
    fail("access_ptr[-1] = ", in.access_ptr[m], " but access_buffer has ", a, " entries");
  }
  check_length("access_bytes", in.access_bytes.size(), a);
  for (size_t k = 0; k < a; ++k) {
    const int64_t b = in.access_buffer[k];
    if (b < 0 || b >= static_cast<int64_t>(n)) {
      fail("access_buffer[", k, "] = ", b, " is not a buffer index in [0, ", n, ")");
    }
    const double x = in.access_bytes[k];
    if (!std::isfinite(x) || x < 0.0) fail("access_bytes[", k, "] must be finite and >= 0, got ", x);
  }
  flops_ = in.instr_flops;
}

void Instance::build_intervals() {
  const int32_t n = num_buffers();
  intervals_ = std::make_shared<const IntervalLayout>(start_, end_);
  // j conflicts with b iff start_j < end_b and start_b < end_j: every buffer minus those that
  // start at or after b's end, minus those that end at or before b's start, minus b itself.
  std::vector<int64_t> starts(start_), ends(end_);
  std::sort(starts.begin(), starts.end());
  std::sort(ends.begin(), ends.end());
  num_conflicts_.assign(static_cast<size_t>(n), 0);
  for (int32_t b = 0; b < n; ++b) {
    const auto late = starts.end() - std::lower_bound(starts.begin(), starts.end(), end_[b]);
    const auto early = std::upper_bound(ends.begin(), ends.end(), start_[b]) - ends.begin();
    num_conflicts_[b] = static_cast<int32_t>(n - late - early - 1);
  }
}

std::vector<int32_t> Instance::conflicts(int32_t b) const {
  std::vector<int32_t> out;
  for (int32_t j = 0; j < num_buffers(); ++j) {
    if (j != b && start_[j] < end_[b] && start_[b] < end_[j]) out.push_back(j);
  }
  std::sort(out.begin(), out.end(), [&](int32_t x, int32_t y) { return rank_[x] < rank_[y]; });
  return out;
}

void Instance::build_segments() {
  std::vector<int64_t> positions(start_);
  positions.insert(positions.end(), end_.begin(), end_.end());
  std::sort(positions.begin(), positions.end());
  positions.erase(std::unique(positions.begin(), positions.end()), positions.end());
  num_segments_ = static_cast<int32_t>(positions.size()) - 1;
  auto index = [&](int64_t x) {
    return static_cast<int32_t>(std::lower_bound(positions.begin(), positions.end(), x) - positions.begin());
  };
  segment_begin_.resize(size_.size());
  segment_end_.resize(size_.size());
  for (size_t b = 0; b < size_.size(); ++b) {
    segment_begin_[b] = index(start_[b]);
    segment_end_[b] = index(end_[b]);
  }
}

void Instance::build_accesses(const InstanceInput& in) {
  const int32_t n = num_buffers();
  const int32_t m = num_instructions();
  // Merge repeated (instruction, buffer) accesses, summing bytes in input order.
  instr_ptr_.assign(static_cast<size_t>(m) + 1, 0);
  instr_buffer_.clear();
  instr_bytes_.clear();
  instr_buffer_.reserve(in.access_buffer.size());
  instr_bytes_.reserve(in.access_buffer.size());
  std::vector<int64_t> idx;
  for (int32_t i = 0; i < m; ++i) {
    const int64_t lo = in.access_ptr[i], hi = in.access_ptr[i + 1];
    idx.resize(static_cast<size_t>(hi - lo));
    std::iota(idx.begin(), idx.end(), lo);
    std::stable_sort(idx.begin(), idx.end(), [&](int64_t x, int64_t y) {
      return in.access_buffer[x] < in.access_buffer[y];
    });
    for (size_t k = 0; k < idx.size(); ++k) {
      const auto b = static_cast<int32_t>(in.access_buffer[idx[k]]);
      const double bytes = in.access_bytes[idx[k]];
      if (static_cast<int64_t>(instr_buffer_.size()) > instr_ptr_[i] && instr_buffer_.back() == b) {
        instr_bytes_.back() += bytes;
      } else {
        instr_buffer_.push_back(b);
        instr_bytes_.push_back(bytes);
      }
    }
    instr_ptr_[i + 1] = static_cast<int64_t>(instr_buffer_.size());
  }
  // Instructions by buffer.
  touched_ptr_.assign(static_cast<size_t>(n) + 1, 0);
  for (int32_t b : instr_buffer_) ++touched_ptr_[b + 1];
  for (int32_t b = 0; b < n; ++b) touched_ptr_[b + 1] += touched_ptr_[b];
  touched_.assign(instr_buffer_.size(), 0);
  std::vector<int64_t> fill(touched_ptr_.begin(), touched_ptr_.end() - 1);
  for (int32_t i = 0; i < m; ++i) {
    for (int64_t k = instr_ptr_[i]; k < instr_ptr_[i + 1]; ++k) touched_[fill[instr_buffer_[k]]++] = i;
  }
}

double Instance::instruction_time(int32_t i, const int64_t* offsets, int32_t also_fast) const {
  double slow = 0.0, fast = 0.0;
  for (int64_t k = instr_ptr_[i]; k < instr_ptr_[i + 1]; ++k) {
    const int32_t b = instr_buffer_[k];
    if (offsets[b] >= 0 || b == also_fast) {
      fast += instr_bytes_[k];
    } else {
      slow += instr_bytes_[k];
    }
  }
  const double memory = slow / slow_bw_ + fast / fast_bw_;
  const double compute = flops_[i] > 0.0 ? flops_[i] / peak_flops_ : 0.0;
  return compute > memory ? compute : memory;
}

}  // namespace mallocgame
