"""The ``agent`` solver and ``mallocgame optimize``, with a tiny untrained policy (and the
shipped one, where present)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mallocgame import api
from mallocgame.cli.main import main
from mallocgame.errors import MallocGameError
from mallocgame.memory.csvio import read_csv
from mallocgame.memory.order import msa_order
from mallocgame.memory.solvers import list_solvers, solve
from mallocgame.memory.solvers.agent import SplitSummary, agent_solve, play_agent
from mallocgame.memory.solvers.policy import PRETRAINED_POLICY, load_agent
from mallocgame.memory.targets import Target
from mallocgame.memory.validate import validate
from mallocgame.memory.workload import Workload
from tests.conftest import random_workload

T = Target(
    "t",
    fast_capacity_bytes=1000,
    alignment_bytes=16,
    slow_bandwidth_bytes_per_s=100.0,
    fast_bandwidth_bytes_per_s=400.0,
    peak_flops_per_s=10.0,
)
COPIES = 4


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory) -> Path:
    """A tiny policy (random init, K = 8 like the real game), saved as the CLI would load it."""
    from agent.trainer import Trainer
    from mallocgame.memory.train import ScaledMallocEnv, make_config, tiny_options

    o = tiny_options(out=str(tmp_path_factory.mktemp("policy")))
    problems = [api.make_problem(random_workload(np.random.default_rng(0), n=12), "30%", T)]
    trainer = Trainer(lambda n, s: ScaledMallocEnv(problems, n, s), make_config(o), seed=0)
    return trainer.save_policy(Path(o.out) / "policy.npz")


@pytest.fixture(scope="module")
def agent(policy_file):
    return load_agent(policy_file)


def problem(seed: int = 1, n: int = 30, capacity: str = "25%", objective: str = "time"):
    return api.make_problem(
        random_workload(np.random.default_rng(seed), n=n), capacity, T, objective=objective
    )


def test_agent_plays_valid_games(agent):
    p = problem()
    lines = play_agent(agent, p.instance(msa_order(p)), copies=COPIES, seed=3)
    assert len(lines) == COPIES
    w = p.workload
    for line in lines:
        assert len(line.actions) == w.num_buffers
        assert validate(
            w.ids, w.sizes, w.starts, w.ends, line.offsets, p.capacity, T.alignment_bytes
        ).valid
    # copy 0 searches without noise (a per-game greedy flag): the same game whatever the seed
    again = play_agent(agent, p.instance(msa_order(p)), copies=COPIES, seed=4)
    assert again[0].actions == lines[0].actions and again[0].ret == lines[0].ret


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_best_is_never_worse_than_msa(agent, seed):
    """msa's line is one of the candidates the solver keeps, so ``best`` >= msa; ``agent_raw``
    (the agent's own games) may be worse."""
    p = problem(seed)
    offsets, extra = agent_solve(p, budget=0.3, seed=seed, copies=COPIES, agent=agent)
    msa = solve(p, "msa")
    from mallocgame.memory.problem import Solution

    sol = Solution(p, "agent", offsets, 0.0, extra)
    assert sol.check().valid
    assert sol.time_s <= msa.time_s * (1 + 1e-9)
    assert extra["best_return"] >= extra["msa_return"] - 1e-12
    assert extra["best_return"] >= extra["agent_raw"] - 1e-12
    assert np.isclose(extra["msa_return"], 1 - msa.time_s / p.all_slow_time, rtol=1e-6, atol=1e-9)
    assert np.isclose(extra["best_return"], 1 - sol.time_s / p.all_slow_time, rtol=1e-6, atol=1e-9)


def skip_workload() -> Workload:
    """A 160-byte buffer live for 10 positions over ten 96-byte one-position buffers; with 160
    bytes of fast memory msa places the long one and blocks the others, msa-skip leaves it slow."""
    return Workload.from_intervals(
        "skip", np.arange(11), [160] + [96] * 10, [0] + list(range(10)), [10] + list(range(1, 11))
    )


def test_msa_skip_line_is_a_start_line(agent):
    """optimize starts from msa-skip's line too: without any search time (budget 0, no local
    search) ``best`` is already msa-skip's mapping, and the local-search ablation gets it."""
    p = api.make_problem(skip_workload(), 160, T)
    skip = solve(p, "msa-skip")
    assert skip.time_s < solve(p, "msa").time_s
    offsets, extra = agent_solve(p, budget=0.0, copies=COPIES, agent=agent, improve_search=False)
    assert extra["msa_skip_return"] > extra["msa_return"]
    assert extra["best_return"] >= extra["msa_skip_return"] - 1e-12
    assert np.isclose(extra["msa_skip_return"], 1 - skip.time_s / p.all_slow_time, rtol=1e-9)
    ls = solve(p, "local-search", seed=0, time_limit=0.1)
    assert ls.time_s <= skip.time_s * (1 + 1e-12)


def test_without_msa_and_improvement_it_is_the_agent_alone(agent):
    p = problem(5)
    offsets, extra = agent_solve(
        p, budget=0.0, copies=COPIES, agent=agent, include_msa=False, improve_search=False
    )
    assert extra["best_source"] == "agent" and extra["best_return"] == extra["agent_raw"]
    assert extra["improve_evaluations"] == 0


def test_fit_all_on_an_easy_instance(agent):
    # Three pairwise-overlapping buffers (multiples of the alignment) that fit together exactly.
    wl = Workload.from_intervals("easy", [0, 1, 2], [96, 208, 288], [0, 1, 2], [5, 6, 7])
    p = api.make_problem(wl, 600, T, objective="fit-all")
    offsets, extra = agent_solve(p, budget=0.5, copies=COPIES, agent=agent)
    assert (offsets >= 0).all() and extra["best_return"] == pytest.approx(1.0)


def test_fit_all_zero_waste_instance_solved_by_the_agent_guided_packing_search(agent, datasets):
    """minimalloc's challenging C (203 buffers, peak live = capacity: zero waste allowed):
    best-fit orders and the agent's games dead-end; the exact packing search, branching on the
    agent's layout first, fits every buffer."""
    f = datasets / "minimalloc-challenging" / "C.1048576.csv"
    wl = api.load_workload(f)
    p = api.make_problem(wl, api.capacity_from_name(f), T, objective="fit-all", alignment=1)
    offsets, extra = agent_solve(p, budget=6.0, copies=2, agent=agent)
    assert not extra["msa_solved"] and not extra["agent_raw_solved"]
    assert extra["best_source"] == "pack" and extra["pack_search"]["search_status"] == "solved"
    assert extra["pack_search"]["heuristic"]  # which order finished is reported
    assert (offsets >= 0).all()
    report = validate(
        wl.ids, wl.sizes, wl.starts, wl.ends, offsets, p.capacity, 1, require_all_fast=True
    )
    assert report.valid, report


def test_large_workload_leaves_time_to_the_local_search(agent):
    """Issue 3: on zoo:gpt2_train (1881 buffers) a round of agent games took the whole budget
    and the local search never ran (the written mapping was msa's). The agent's games now take
    at most half the budget (the greedy game always completes: the sampled copies are dropped
    when the first moves show the round would overrun) and the local search gets the rest, less
    what msa-skip's fractions take (at most half of it)."""
    from mallocgame.memory import splits

    wl = splits.zoo("gpt2_train").load()  # the zoo's default gpt2_train (cached on disk)
    assert wl.num_buffers > 1000
    p = api.make_problem(wl, "10%", "tpuv4i")
    budget = 1.0
    offsets, extra = agent_solve(p, budget=budget, seed=0, copies=COPIES, agent=agent)
    sp = extra["split"]
    assert sp["agent_cap_s"] == pytest.approx(0.5 * budget) and sp["budget_s"] == budget
    assert sp["improve_ran"] and extra["improve_evaluations"] > 0
    # the agent's games take at most half, msa-skip's fractions at most half of the rest, the
    # search the remainder: at least a quarter of the budget, and the whole solve keeps it
    assert sp["improve_s"] >= 0.25 * budget - 0.05
    assert sp["total_s"] <= budget + 0.5
    assert sp["first_round_moves"] == wl.num_buffers  # the greedy game is complete
    assert extra["agent_games"] >= 1 and sp["probe_s_per_move"] > 0
    if sp["projected_round_s"] > sp["agent_cap_s"]:  # this machine: ~3 s for a round of 4
        assert sp["sampled_dropped_at_move"] is not None and extra["agent_games"] == 1
    if sp["probe_s_per_move"] * wl.num_buffers > 4 * sp["agent_cap_s"]:
        # even alone, 1881 searched moves would overrun the share: the policy network plays on
        # without search (about a network call per move: far faster than searched moves)
        assert sp["prior_from_move"] is not None and 0 < sp["prior_from_move"] < wl.num_buffers
        assert sp["agent_s"] < 0.5 * sp["probe_s_per_move"] * wl.num_buffers
    assert sp["total_s"] == pytest.approx(sp["agent_s"] + sp["improve_s"], abs=0.5)
    assert extra["improve_wall_s"] == sp["improve_s"]
    # both kinds of local-search step ran, interleaved: the descent of the agent's 1881-move
    # line does not hold up the reorderings (each keeps at least a third, up to one step)
    steps = sp["improve_steps"]
    assert steps["descend"]["steps"] > 0 and steps["reorder"]["steps"] > 0
    spent = steps["descend"]["s"] + steps["reorder"]["s"]
    assert min(steps["descend"]["s"], steps["reorder"]["s"]) >= spent / 3 - 0.1
    from mallocgame.memory.problem import Solution

    sol = Solution(p, "agent", offsets, 0.0, extra)
    assert sol.check().valid
    assert sol.time_s <= solve(p, "msa").time_s * (1 + 1e-9)


def test_small_workload_split_and_share(agent):
    """A short game fits the agent's share: all copies play, nothing is dropped, the local
    search fills the rest of the budget; budget 0 = the agent's games only."""
    p = problem(6, n=30)
    _, extra = agent_solve(p, budget=1.5, seed=0, copies=COPIES, agent=agent, agent_share=0.6)
    sp = extra["split"]
    assert extra["agent_games"] == COPIES and sp["sampled_dropped_at_move"] is None
    assert (
        sp["agent_s"] <= 0.6 * 1.5 and sp["improve_ran"] and sp["agent_cap_s"] == pytest.approx(0.9)
    )
    assert sp["total_s"] == pytest.approx(1.5, abs=0.2) and sp["over_budget_s"] < 0.2
    _, extra = agent_solve(p, budget=0.0, seed=0, copies=COPIES, agent=agent)
    assert not extra["split"]["improve_ran"] and extra["improve_evaluations"] == 0
    assert extra["agent_games"] == COPIES and extra["split"]["agent_cap_s"] is None
    with pytest.raises(ValueError, match="agent_share"):
        agent_solve(p, budget=0.1, copies=COPIES, agent=agent, agent_share=0.0)


def test_local_search_kinds_of_step(agent):
    """``improve`` from msa's line: never worse than its start; with ``reorder=False`` only
    descents run and every line stays in the start line's order (what the demonstrations of
    ``mallocgame train`` need); its stats account for the steps of each kind."""
    import time

    from mallocgame import _native
    from mallocgame.memory.solvers.local_search import best_fit_line, improve

    p = problem(4, n=40, capacity="20%")
    order = msa_order(p)
    msa = best_fit_line(p.instance(order), "msa")
    for reorder in (True, False):
        stats: dict = {}
        best, evals = improve(
            agent,
            p,
            order,
            [msa],
            time.perf_counter() + 0.5,
            seed=1,
            reorder=reorder,
            stats=stats,
        )
        assert best.ret >= msa.ret - 1e-12 and evals > 0
        assert set(stats) == ({"descend", "reorder"} if reorder else {"descend"})
        assert all(v["steps"] > 0 and v["s"] > 0 and v["gain"] >= 0 for v in stats.values())
        assert sum(v["gain"] for v in stats.values()) == pytest.approx(best.ret - msa.ret)
        if not reorder:
            assert list(best.instance.order()) == list(order)
        check = _native.Game(best.instance)
        check.replay(best.actions)
        assert check.return_so_far == pytest.approx(best.ret)


def test_registered_as_a_solver():
    assert {"agent", "local-search"} <= set(list_solvers())


def test_split_summary_keeps_the_json_keys():
    """``extra["split"]`` (written by ``mallocgame optimize``) keeps its keys, in order."""
    keys = [
        "budget_s",
        "agent_share",
        "agent_cap_s",
        "agent_s",
        "improve_s",
        "improve_ran",
        "total_s",
        "over_budget_s",
        "agent_rounds",
        "first_round_s",
        "first_round_moves",
        "probe_s_per_move",
        "projected_round_s",
        "sampled_dropped_at_move",
        "prior_from_move",
        "estimated_round_s",
        "improve_steps",
    ]
    split = SplitSummary(**{k: i for i, k in enumerate(keys)})
    assert list(split.to_dict()) == keys and list(split.to_dict().values()) == list(range(17))
    json.dumps(split.to_dict())


def test_agent_solve_split_is_a_dict_of_those_keys(agent):
    _, extra = agent_solve(problem(2), budget=0.2, seed=0, copies=COPIES, agent=agent)
    sp = extra["split"]
    assert isinstance(sp, dict) and list(sp) == [
        f.name for f in SplitSummary.__dataclass_fields__.values()
    ]
    json.dumps(sp)


def test_optimize_cli_writes_mapping_json_and_proto(policy_file, tmp_path, capsys):
    wl = random_workload(np.random.default_rng(7), n=25)
    src = tmp_path / "w.workload.json.gz"
    wl.save(src)
    out = tmp_path / "m.csv"
    code = main(
        [
            "optimize",
            str(src),
            "--capacity",
            "30%",
            "--budget",
            "0.5",
            "--out",
            str(out),
            "--policy",
            str(policy_file),
            "--copies",
            str(COPIES),
            "--json",
            "--compare-restarts",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    for key in ("agent", "msa", "comparison", "restarts", "speedup_vs_msa"):
        assert key in summary, key
    assert "agent_raw" in summary["agent"] and summary["msa"]["solver"] == "msa"
    split = summary["split"]  # the measured split of the budget
    assert split["improve_ran"] and split["improve_s"] > 0 and split["agent_s"] > 0
    assert split["agent_cap_s"] == pytest.approx(0.25) and split["budget_s"] == 0.5
    assert summary["time_s"] <= summary["msa"]["time_s"] * (1 + 1e-9)
    assert out.exists() and out.with_suffix(".json").exists()
    assert (tmp_path / "m.msa_overrides.txtpb").read_text().startswith("# proto-file")
    on_disk = json.loads(out.with_suffix(".json").read_text())
    assert on_disk["agent"]["agent_raw"] == summary["agent"]["agent_raw"]
    w2, offsets = read_csv(out)
    cap = summary["capacity"]
    assert validate(w2.ids, w2.sizes, w2.starts, w2.ends, offsets, cap, T.alignment_bytes).valid
    assert main(["validate", str(out), "--capacity", str(cap)]) == 0


def test_optimize_human_output_shows_agent_and_msa(policy_file, tmp_path, capsys):
    wl = random_workload(np.random.default_rng(8), n=20)
    src = tmp_path / "w.workload.json.gz"
    wl.save(src)
    code = main(
        [
            "optimize",
            str(src),
            "--capacity",
            "40%",
            "--budget",
            "0.2",
            "--policy",
            str(policy_file),
            "--copies",
            str(COPIES),
        ]
    )
    text = capsys.readouterr().out
    assert code == 0
    assert "agent_raw" in text and "msa" in text and "best (agent + search)" in text
    assert "split     agent games" in text and "local search" in text


def test_optimize_bad_input(policy_file, tmp_path, capsys):
    assert main(["optimize", str(tmp_path / "missing.csv"), "--policy", str(policy_file)]) == 2
    wl = random_workload(np.random.default_rng(9), n=10)
    src = tmp_path / "w.workload.json.gz"
    wl.save(src)
    assert main(["optimize", str(src), "--copies", "0", "--policy", str(policy_file)]) == 2
    assert main(["optimize", str(src), "--policy", str(tmp_path / "nope.npz")]) == 1
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a checkpoint")
    assert main(["optimize", str(src), "--policy", str(bad)]) == 2
    with pytest.raises(SystemExit) as e:
        main(["optimize", "--help"])
    assert e.value.code == 0


def test_missing_policy_is_a_clear_error(tmp_path):
    with pytest.raises(MallocGameError, match="no trained agent"):
        load_agent(tmp_path / "none.npz")


@pytest.mark.skipif(not PRETRAINED_POLICY.exists(), reason="no shipped policy in this checkout")
def test_the_shipped_policy_loads_and_fits_the_game():
    size = PRETRAINED_POLICY.stat().st_size
    assert size < 5_000_000
    ag = load_agent()
    p = problem(11, n=15)
    inst = p.instance(msa_order(p))
    assert (inst.observation_size, inst.num_actions) == (ag.observation_size, ag.num_actions)
    assert (PRETRAINED_POLICY.parent / "README.md").exists()


def test_a_game_that_would_overrun_even_unsearched_ends_with_best_fit(agent):
    """Issue 20: at 28,538 buffers the network alone took 18 s for a 10 s budget. When the
    policy network's own moves would still end after the cap, best fit plays the rest: the
    game is complete, valid, and ends near the cap."""
    import time

    from mallocgame.memory.solvers.local_search import best_fit_actions

    wl = random_workload(np.random.default_rng(3), n=400)
    p = api.make_problem(wl, "25%", "tpuv4i")
    inst = p.instance(msa_order(p))
    stats: dict = {}
    lines = play_agent(agent, inst, copies=2, cap=time.perf_counter(), probe_moves=2, stats=stats)
    assert len(lines) == 1 and stats["dropped_sampled"] == 2
    assert stats["prior_from"] is not None and stats["best_fit_from"] is not None
    line = lines[0]
    assert stats["moves"] == len(line.actions) == wl.num_buffers
    assert validate(wl.ids, wl.sizes, wl.starts, wl.ends, line.offsets, p.capacity).valid
    # the tail is best fit's: replaying the line's moves gives the same game
    from mallocgame import _native

    g = _native.Game(inst)
    g.replay(line.actions[: stats["best_fit_from"]])
    assert best_fit_actions(g) == line.actions[stats["best_fit_from"] :]
