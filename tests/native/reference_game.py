"""A plain-Python reference of the mallocGame rules, written apart from the native core.

It follows docs/game.md literally and favours readability over speed: conflicts are found by
comparing every pair of buffers, candidates by sorting and merging address ranges on every call,
time bins with exact fractions. The tests compare the native core against it move by move.

Floating-point sums are made in the order docs/game.md states (accesses of an instruction by
ascending buffer, instructions by ascending index), so the rewards agree to the last bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

SLOW = -1
UNDECIDED = -2


class ReferenceGame:
    """One mallocGame: the problem and the state (see docs/game.md)."""

    def __init__(
        self,
        sizes: Sequence[int],
        starts: Sequence[int],
        ends: Sequence[int],
        instr_flops: Sequence[float],
        access_ptr: Sequence[int],
        access_buffer: Sequence[int],
        access_bytes: Sequence[float],
        capacity: int,
        alignment: int,
        fast_bandwidth: float,
        slow_bandwidth: float,
        peak_flops: float,
        order: Sequence[int],
        num_candidates: int = 8,
        objective: str = "time",
        grid: int = 16,
    ) -> None:
        self.sizes = [int(x) for x in sizes]
        self.starts = [int(x) for x in starts]
        self.ends = [int(x) for x in ends]
        self.flops = [float(x) for x in instr_flops]
        self.capacity = int(capacity)
        self.alignment = int(alignment)
        self.fast_bandwidth = float(fast_bandwidth)
        self.slow_bandwidth = float(slow_bandwidth)
        self.peak_flops = float(peak_flops)
        self.order = [int(x) for x in order]
        self.num_candidates = int(num_candidates)
        self.objective = objective
        self.grid = int(grid)
        self.num_buffers = len(self.sizes)
        self.total_bytes = sum(self.sizes)

        # Accesses per instruction, repeated (instruction, buffer) pairs merged, by buffer.
        self.accesses: list[list[tuple[int, float]]] = []
        for i in range(len(self.flops)):
            merged: dict[int, float] = {}
            for a in range(int(access_ptr[i]), int(access_ptr[i + 1])):
                b = int(access_buffer[a])
                merged[b] = merged.get(b, 0.0) + float(access_bytes[a])
            self.accesses.append(sorted(merged.items()))
        # The instructions that touch each buffer, ascending.
        self.touched: list[list[int]] = [[] for _ in range(self.num_buffers)]
        for i, accesses in enumerate(self.accesses):
            for b, _ in accesses:
                self.touched[b].append(i)

        self.conflicts: list[list[int]] = [
            [j for j in range(self.num_buffers) if j != b and self.overlap(b, j)]
            for b in range(self.num_buffers)
        ]

        self.all_slow_time = 0.0
        self.lower_bound_time = 0.0
        for i in range(len(self.flops)):
            self.all_slow_time += self.instruction_time(i, lambda b: False)
            self.lower_bound_time += self.instruction_time(i, lambda b: True)
        self.reward_scale = self.all_slow_time if self.all_slow_time > 0 else 1.0

        self.time_begin = min(self.starts)
        self.time_span = max(self.ends) - self.time_begin

        # Static values (docs/game.md, buffer.density_rank ...): the reward of each buffer alone
        # in fast memory, per byte and schedule position, and its rank among all buffers.
        self.static_benefit = []
        for b in range(self.num_buffers):
            if self.objective == "fit-all":
                value = self.sizes[b] / self.total_bytes
            else:
                saved = 0.0
                for i in self.touched[b]:
                    before = self.instruction_time(i, lambda j: False)
                    after = self.instruction_time(i, lambda j, b=b: j == b)
                    saved += before - after
                value = saved / self.reward_scale
            self.static_benefit.append(value)
        total = 0.0
        for value in self.static_benefit:  # in order, as the core sums (not math.fsum / sum)
            total += value
        self.mean_benefit = total / self.num_buffers
        self.density = [
            self.static_benefit[b] / (float(self.sizes[b]) * float(self.ends[b] - self.starts[b]))
            for b in range(self.num_buffers)
        ]
        self.density_rank = [
            sum(1 for c in range(self.num_buffers) if self.density[c] < self.density[b])
            / self.num_buffers
            for b in range(self.num_buffers)
        ]
        self.reset()

    # ------------------------------------------------------------------ rules
    def overlap(self, a: int, b: int) -> bool:
        """Two live ranges [start, end) overlap."""
        return self.starts[a] < self.ends[b] and self.starts[b] < self.ends[a]

    def instruction_time(self, i: int, is_fast) -> float:
        """Roofline time of instruction i; is_fast(buffer) says where a buffer lives."""
        slow = 0.0
        fast = 0.0
        for b, nbytes in self.accesses[i]:
            if is_fast(b):
                fast += nbytes
            else:
                slow += nbytes
        memory = slow / self.slow_bandwidth + fast / self.fast_bandwidth
        compute = self.flops[i] / self.peak_flops if self.flops[i] > 0 else 0.0
        return max(compute, memory)

    def is_fast(self, b: int) -> bool:
        return self.offsets[b] >= 0

    def time(self) -> float:
        total = 0.0
        for i in range(len(self.flops)):
            total += self.instruction_time(i, self.is_fast)
        return total

    def reset(self) -> None:
        self.offsets = [UNDECIDED] * self.num_buffers
        self.turn = 0
        self.failed = False
        self.return_so_far = 0.0
        self._check_dead_end()

    @property
    def done(self) -> bool:
        return self.failed or self.turn == self.num_buffers

    @property
    def solved(self) -> bool:
        return self.turn == self.num_buffers

    @property
    def current_buffer(self) -> int:
        return -1 if self.done else self.order[self.turn]

    def occupied_ranges(self, b: int) -> list[tuple[int, int]]:
        """The merged address ranges of the fast buffers that conflict with b."""
        ranges = sorted(
            (self.offsets[j], self.offsets[j] + self.sizes[j])
            for j in self.conflicts[b]
            if self.offsets[j] >= 0
        )
        merged: list[list[int]] = []
        for lo, hi in ranges:
            if merged and lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        return [(lo, hi) for lo, hi in merged]

    def free_gaps(self, b: int) -> list[tuple[int, int]]:
        gaps = []
        previous_end = 0
        for lo, hi in self.occupied_ranges(b):
            if lo > previous_end:
                gaps.append((previous_end, lo))
            previous_end = max(previous_end, hi)
        if previous_end < self.capacity:
            gaps.append((previous_end, self.capacity))
        return gaps

    def candidate_details(self) -> list[tuple[int, int, int]]:
        """(leftover, offset, gap length) of the candidates, best fit first, at most K."""
        if self.done:
            return []
        b = self.current_buffer
        size = self.sizes[b]
        found = []
        for g0, g1 in self.free_gaps(b):
            offset = -(-g0 // self.alignment) * self.alignment
            if offset + size <= g1:
                found.append((g1 - offset - size, offset, g1 - g0))
        found.sort()
        return found[: self.num_candidates]

    def candidates(self) -> list[int]:
        offsets = [offset for _, offset, _ in self.candidate_details()]
        return offsets + [-1] * (self.num_candidates - len(offsets))

    def legal_mask(self) -> list[bool]:
        if self.done:
            return [False] * (self.num_candidates + 1)
        count = len(self.candidate_details())
        mask = [self.objective == "time"]
        mask += [k < count for k in range(self.num_candidates)]
        return mask

    def fast_reward(self) -> float:
        """The reward placing the current buffer in fast memory would earn now."""
        if self.done:
            return 0.0
        b = self.current_buffer
        if self.objective == "fit-all":
            return self.sizes[b] / self.total_bytes
        saved = 0.0
        for i in self.touched[b]:
            before = self.instruction_time(i, self.is_fast)
            after = self.instruction_time(i, lambda j: j == b or self.is_fast(j))
            saved += before - after
        return saved / self.reward_scale

    def step(self, action: int) -> float:
        if self.done:
            raise ValueError("the game is over")
        details = self.candidate_details()
        slow_ok = action == 0 and self.objective == "time"
        if not slow_ok and not 1 <= action <= len(details):
            raise ValueError(f"action {action} is illegal")
        b = self.current_buffer
        if action == 0:
            self.offsets[b] = SLOW
            reward = 0.0
        else:
            reward = self.fast_reward()
            self.offsets[b] = details[action - 1][1]
        self.turn += 1
        self.return_so_far += reward
        self._check_dead_end()
        return reward

    def _check_dead_end(self) -> None:
        if self.objective == "fit-all" and not self.done and not self.candidate_details():
            self.failed = True

    def play_greedy(self) -> float:
        total = 0.0
        while not self.done:
            if self.candidate_details() and (self.objective == "fit-all" or self.fast_reward() > 0):
                total += self.step(1)
            else:
                total += self.step(0)
        return total

    def play_best_fit(self) -> float:
        total = 0.0
        while not self.done:
            total += self.step(1 if self.candidate_details() else 0)
        return total

    # ------------------------------------------------------------------ observation
    def observation_size(self) -> int:
        return self.grid * self.grid + self.grid + 11 + 4 * self.num_candidates + 6

    def _time_bin(self, j: int) -> tuple[Fraction, Fraction]:
        width = Fraction(self.time_span, self.grid)
        return self.time_begin + j * width, self.time_begin + (j + 1) * width

    def _address_bin(self, k: int) -> tuple[Fraction, Fraction]:
        width = Fraction(self.capacity, self.grid)
        return k * width, (k + 1) * width

    @staticmethod
    def _overlap_length(
        lo: Fraction | int, hi: Fraction | int, a: Fraction, b: Fraction
    ) -> Fraction:
        return max(Fraction(0), min(Fraction(hi), b) - max(Fraction(lo), a))

    def peak_in_use(self, b: int) -> int:
        peak = 0
        for t in range(self.starts[b], self.ends[b]):
            live = sum(
                self.sizes[j]
                for j in range(self.num_buffers)
                if self.offsets[j] >= 0 and self.starts[j] <= t < self.ends[j]
            )
            peak = max(peak, live)
        return peak

    def observe(self) -> list[float]:
        """The observation vector, section by section as docs/game.md lays it out."""
        g = self.grid
        k_max = self.num_candidates
        cap = self.capacity if self.capacity > 0 else 1
        occupancy = [0.0] * (g * g)
        if self.capacity > 0:
            cell_area = Fraction(self.time_span, g) * Fraction(self.capacity, g)
            for j in range(g):
                t0, t1 = self._time_bin(j)
                for k in range(g):
                    a0, a1 = self._address_bin(k)
                    area = Fraction(0)
                    for b in range(self.num_buffers):
                        if self.offsets[b] >= 0:
                            dt = self._overlap_length(self.starts[b], self.ends[b], t0, t1)
                            da = self._overlap_length(
                                self.offsets[b], self.offsets[b] + self.sizes[b], a0, a1
                            )
                            area += dt * da
                    occupancy[j * g + k] = float(area / cell_area)
        live_range = [0.0] * g
        buffer = [0.0] * 11
        candidates = [0.0] * (4 * k_max)
        undecided = sum(
            self.sizes[b] for b in range(self.num_buffers) if self.offsets[b] == UNDECIDED
        )
        globals_ = [
            self.turn / self.num_buffers,
            undecided / self.total_bytes,
            min(4.0, max(0.0, self.time() / self.reward_scale)),
            0.0,
            0.0,
            1.0 if self.objective == "fit-all" else 0.0,
        ]
        if not self.done:
            b = self.current_buffer
            st, en, size = self.starts[b], self.ends[b], self.sizes[b]
            width = Fraction(self.time_span, g)
            for j in range(g):
                t0, t1 = self._time_bin(j)
                live_range[j] = float(self._overlap_length(st, en, t0, t1) / width)
            span = self.time_span
            buffer = [
                min(1.0, size / self.capacity) if self.capacity > 0 else 1.0,
                math.log2(size) / 40,
                (st - self.time_begin) / span,
                (en - self.time_begin) / span,
                (en - st) / span,
                min(1.0, max(-1.0, self.fast_reward())),
                len(self.conflicts[b]) / self.num_buffers,
                self.density_rank[b],
                -1.0,
                0.0,
                0.0,
            ]
            reward = self.fast_reward()
            if reward > 0 and self.mean_benefit > 0:
                buffer[8] = min(1.0, max(-1.0, math.log2(reward / self.mean_benefit) / 16))
            peaks = [0, 0]  # contention (denser undecided buffers only), pressure (all)
            for t in range(st, en):
                live = sum(
                    self.sizes[j]
                    for j in range(self.num_buffers)
                    if self.offsets[j] >= 0 and self.starts[j] <= t < self.ends[j]
                )
                pending = [
                    j
                    for j in range(self.num_buffers)
                    if j != b
                    and self.offsets[j] == UNDECIDED
                    and self.starts[j] <= t < self.ends[j]
                ]
                denser = sum(self.sizes[j] for j in pending if self.density[j] > self.density[b])
                peaks[0] = max(peaks[0], live + denser)
                peaks[1] = max(peaks[1], live + sum(self.sizes[j] for j in pending))
            buffer[9] = min(4.0, peaks[0] / cap)
            buffer[10] = min(4.0, peaks[1] / cap)
            for k, (leftover, offset, gap) in enumerate(self.candidate_details()):
                candidates[4 * k : 4 * k + 4] = [1.0, offset / cap, leftover / cap, gap / cap]
            blocked = sum(hi - lo for lo, hi in self.occupied_ranges(b))
            globals_[3] = min(1.0, self.peak_in_use(b) / cap)
            globals_[4] = min(1.0, blocked / cap)
        return occupancy + live_range + buffer + candidates + globals_
