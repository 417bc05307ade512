import numpy as np

from agent.env import check_env, random_legal_actions
from mallocgame import api
from mallocgame.memory.env import MallocEnv
from mallocgame.memory.targets import Target
from tests.conftest import random_workload

T = Target(
    "t",
    fast_capacity_bytes=1000,
    alignment_bytes=16,
    slow_bandwidth_bytes_per_s=100.0,
    fast_bandwidth_bytes_per_s=400.0,
    peak_flops_per_s=10.0,
)


def problems(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return [api.make_problem(random_workload(rng, n=10 + 5 * i), "30%", T) for i in range(n)]


def test_protocol_and_auto_reset():
    env = MallocEnv(problems(), num_envs=4, seed=1)
    check_env(env, num_steps=80)
    # Games are 10-20 moves long, so 80 steps finished many, each replaced by a new one.
    assert len(env.finished_returns) >= 4 * 80 // 20


def test_returns_match_the_cost_model_and_msa_baseline():
    env = MallocEnv(problems(1), num_envs=2, seed=0)
    prep = env.pool[0]
    assert np.allclose(env.reset()[0].shape, (2, env.observation_size))
    # Playing action 1 whenever legal (else 0) is exactly the msa line of play.
    obs, legal = env.reset()
    totals = np.zeros(2)
    for _ in range(prep.instance.num_buffers):
        a = np.where(legal[:, 1], 1, 0).astype(np.int32)
        obs, legal, r, d = env.step(a)
        totals += r
    assert d.all()
    assert np.allclose(totals, prep.msa_return, rtol=1e-5)
    assert np.allclose(env.baseline_return(), prep.msa_return)
    # And the msa return is the fractional time saved under the independent cost model.
    sol = api.solve(prep.problem.workload, prep.problem.capacity, "msa", T)
    assert np.isclose(prep.msa_return, 1 - sol.time_s / sol.problem.all_slow_time, rtol=1e-9)


def test_random_play_keeps_every_placement_valid():
    env = MallocEnv(problems(2, seed=5), num_envs=3, seed=2)
    rng = np.random.default_rng(0)
    obs, legal = env.reset()
    for _ in range(30):
        obs, legal, r, d = env.step(random_legal_actions(rng, legal))
    from mallocgame.memory.validate import validate

    for i, g in enumerate(env._games):
        w = env.pool[int(env._slot_problem[i])].problem.workload
        off = np.array(g.offsets())
        off[off < 0] = -1
        assert validate(
            w.ids, w.sizes, w.starts, w.ends, off, T.fast_capacity_bytes, T.alignment_bytes
        ).valid
