"""Fake memory solvers for the bench's tests: one that refuses, crashes, dies, hangs or returns
an invalid mapping. They live in a module of their own so that a run in another process (a
forked child, a Ray worker) imports them by name (``tests.bench.fakes:NAME``)."""

from __future__ import annotations

import os
import time

import numpy as np

from mallocgame.errors import MallocGameError


def refuses(problem, rng, time_limit):
    raise MallocGameError("no trained policy here")


def crashes(problem, rng, time_limit):
    raise RuntimeError("boom")


def dies(problem, rng, time_limit):
    os._exit(3)  # the run's process ends without a word


def hangs(problem, rng, time_limit):
    time.sleep(600)  # until the hard timeout kills it


def overlaps(problem, rng, time_limit):
    return np.zeros(problem.workload.num_buffers, dtype=np.int64), {}  # everything at offset 0


NAMES = ("refuses", "crashes", "dies", "hangs", "overlaps")
