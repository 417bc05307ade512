r"""Fuzzes every input path (minimalloc CSV, workload files, XLA dump folders, rank configs, the
native entry points) with the generators of ``tests/fuzz/strategies.py``, in a subprocess per
batch so that a crash of the interpreter is seen, and prints how each case ended.

    .venv/bin/python benchmarks/fuzz_inputs.py --cases 100000 --seed 0

Each case either succeeds with a valid result (``ok``), or raises a declared error with a
one-line message naming its place (``clean``: see ``tests/fuzz/harness.py``). ``crashes``: the
worker died (a signal, or a non-zero exit); ``hangs``: a batch ran past ``--timeout`` with one
case; ``bad``: a wrong exception type, a multi-line message, a message without the file and
line or field, or an invalid result. A reproducer is saved for every crash and hang and for
the first few bad cases of each reason (pickled cases; ``--replay FILE`` runs one again).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fuzz.harness import PATHS, cleanup, replay_file, run_case, save_case  # noqa: E402

#: reproducers kept per (path, reason) of bad outcomes
KEEP_PER_REASON = 3


# ----------------------------------------------------------------------------- worker
def worker(args: argparse.Namespace) -> int:
    """Run ``args.count`` cases of ``args.path`` with hypothesis seed ``args.batch_seed``; one
    JSON line per case to ``args.out``; the case about to run is pickled to ``args.current``."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    from tests.fuzz import strategies

    bases = strategies.base_dumps(compile_jax=not args.no_jax) if args.path == "xla" else None
    strategy = strategies.cases_for(args.path, bases)
    out_dir = Path(args.out).parent
    kept: collections.Counter[str] = collections.Counter()
    done = [0]
    with open(args.out, "a", buffering=1) as out:

        @hseed(args.batch_seed)
        @settings(
            max_examples=args.count,
            database=None,
            phases=[Phase.generate],
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(strategy)
        def run(case) -> None:
            if done[0] >= args.count:
                return
            save_case(case, args.current)
            o = run_case(case)
            done[0] += 1
            rec = {"s": o.status}
            if o.status == "bad":
                reason = f"[known native issue: {o.known}] {o.reason}" if o.known else o.reason
                rec.update(r=reason, d=o.detail)
                if kept[reason] < KEEP_PER_REASON:
                    kept[reason] += 1
                    repro = out_dir / f"bad-{args.path}-{args.batch_seed}-{done[0]}.pkl"
                    shutil.copyfile(args.current, repro)
                    rec["repro"] = str(repro)
            out.write(json.dumps(rec) + "\n")

        try:
            run()
        finally:
            cleanup()
    return 0


# ----------------------------------------------------------------------------- parent
def _signal_name(rc: int) -> str:
    if rc < 0:
        try:
            return signal.Signals(-rc).name
        except ValueError:
            return f"signal {-rc}"
    return f"exit {rc}"


class Batch:
    def __init__(self, path: str, count: int, seed: int, work: Path, tag: str):
        self.path, self.count, self.seed = path, count, seed
        self.out = work / f"{tag}.jsonl"
        self.current = work / f"{tag}.current.pkl"
        self.proc: subprocess.Popen | None = None
        self.started = 0.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--cases", type=int, default=100_000, help="cases in all (default 100000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--paths", default=",".join(PATHS), help=f"comma list of {PATHS}")
    ap.add_argument("--batch", type=int, default=1000, help="cases per subprocess")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per batch")
    ap.add_argument("--out-dir", default=None, help="where reproducers go (default: a temp dir)")
    ap.add_argument("--no-jax", action="store_true", help="XLA cases from the checked-in dump only")
    ap.add_argument("--json", action="store_true", help="also print the summary as JSON")
    ap.add_argument("--replay", metavar="FILE", help="run one saved case and print its outcome")
    # worker mode (internal)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    ap.add_argument("--count", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--batch-seed", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--current", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)
    if args.replay:
        o = replay_file(args.replay)
        print(f"{o.status}: {o.reason}\n{o.detail}")
        return 0 if o.status != "bad" else 1

    paths = [p for p in args.paths.split(",") if p]
    for p in paths:
        if p not in PATHS:
            ap.error(f"unknown path {p!r}; choose from {', '.join(PATHS)}")
    out_dir = Path(args.out_dir or tempfile.mkdtemp(prefix="mallocgame-fuzz-out-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    work = out_dir / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()

    if "xla" in paths and not args.no_jax:
        # Compile the loop dump once, before the workers race to.
        from tests.fuzz import strategies

        strategies.base_dumps(compile_jax=True)

    per_path = {
        p: args.cases // len(paths) + (i < args.cases % len(paths)) for i, p in enumerate(paths)
    }  # noqa: E501
    queue: list[Batch] = []
    n_tag = 0
    for pi, p in enumerate(paths):
        left, b = per_path[p], 0
        while left > 0:
            c = min(args.batch, left)
            seed = args.seed * 1_000_003 + pi * 10_007 + b
            queue.append(Batch(p, c, seed, work, f"b{n_tag}"))
            n_tag += 1
            left -= c
            b += 1

    tally = {p: collections.Counter() for p in paths}
    reasons = {p: collections.Counter() for p in paths}
    examples: dict[tuple[str, str], list[str]] = {}
    crashes: list[dict] = []
    running: list[Batch] = []
    t0 = time.perf_counter()
    env = dict(os.environ, PYTHONHASHSEED="0")

    def start(b: Batch) -> None:
        cmd = [
            sys.executable, __file__, "--worker", "--path", b.path, "--count", str(b.count),
            "--batch-seed", str(b.seed), "--out", str(b.out), "--current", str(b.current),
        ]  # fmt: skip
        if args.no_jax:
            cmd.append("--no-jax")
        b.proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        b.started = time.perf_counter()
        running.append(b)

    def finish(b: Batch, hung: bool) -> None:
        nonlocal n_tag
        assert b.proc is not None
        stderr = b.proc.stderr.read().decode(errors="replace") if b.proc.stderr else ""
        rc = b.proc.returncode
        done = 0
        if b.out.exists():
            for line in b.out.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                done += 1
                tally[b.path][rec["s"]] += 1
                if rec["s"] == "bad":
                    reasons[b.path][rec["r"]] += 1
                    ex = examples.setdefault((b.path, rec["r"]), [])
                    if len(ex) < 2:
                        where = f"  [repro: {rec['repro']}]" if "repro" in rec else ""
                        ex.append(rec["d"] + where)
        failed = hung or rc != 0
        if rc is not None and rc > 0 and not hung:
            # The worker itself failed (a generator or harness error, with a traceback), not
            # the interpreter: reported apart, and the batch is not retried.
            crashes.append({"path": b.path, "kind": "worker error", "how": _signal_name(rc),
                            "stderr_tail": stderr.strip().splitlines()[-6:]})  # fmt: skip
            tally[b.path]["worker_error"] += 1
            return
        if failed and b.current.exists() and done < b.count:
            kind = "hang" if hung else "crash"
            repro = out_dir / f"{kind}-{b.path}-{b.seed}-{done}.pkl"
            shutil.copyfile(b.current, repro)
            tally[b.path]["hang" if hung else "crash"] += 1
            done += 1
            crashes.append(
                {
                    "path": b.path,
                    "kind": kind,
                    "how": "timeout" if hung else _signal_name(rc),
                    "repro": str(repro),
                    "stderr_tail": stderr.strip().splitlines()[-3:],
                }
            )
        elif failed:
            crashes.append({"path": b.path, "kind": "worker", "how": _signal_name(rc),
                            "stderr_tail": stderr.strip().splitlines()[-5:]})  # fmt: skip
        left = b.count - done
        if left > 0 and (done > 0 or not failed):
            queue.append(Batch(b.path, left, b.seed + 7_919 * 1_000, work, f"b{n_tag}"))
            n_tag += 1

    while queue or running:
        while queue and len(running) < args.jobs:
            start(queue.pop(0))
        time.sleep(0.05)
        for b in list(running):
            assert b.proc is not None
            hung = False
            if b.proc.poll() is None:
                if time.perf_counter() - b.started < args.timeout:
                    continue
                b.proc.kill()
                b.proc.wait()
                hung = True
            running.remove(b)
            finish(b, hung)
    wall = time.perf_counter() - t0

    cols = ("cases", "ok", "clean", "crashes", "hangs", "bad")
    print(f"\nfuzz_inputs: {args.cases} cases, seed {args.seed}, {args.jobs} jobs, "
          f"wall {wall:.1f} s\n")  # fmt: skip
    print(f"| {'input path':<10} | " + " | ".join(f"{c:>7}" for c in cols) + " |")
    print("|" + "-" * 12 + "|" + "|".join("-" * 9 for _ in cols) + "|")
    total: collections.Counter[str] = collections.Counter()
    for p in paths:
        t = tally[p]
        row = {
            "cases": sum(t.values()), "ok": t["ok"], "clean": t["clean"],
            "crashes": t["crash"], "hangs": t["hang"], "bad": t["bad"],
        }  # fmt: skip
        total.update(row)
        print(f"| {p:<10} | " + " | ".join(f"{row[c]:>7}" for c in cols) + " |")
    print(f"| {'all':<10} | " + " | ".join(f"{total[c]:>7}" for c in cols) + " |")
    if any(reasons[p] for p in paths):
        print("\nbad outcomes by reason:")
        for p in paths:
            for r, n in reasons[p].most_common():
                print(f"  {p}: {n:6d}  {r}")
                for ex in examples.get((p, r), []):
                    one = ex.replace("\n", "\\n").replace("\r", "\\r")
                    print(f"      e.g. {one[:300]}")
    for c in crashes:
        print(f"\n{c['kind']} ({c['path']}, {c['how']}): reproducer {c.get('repro', '-')}")
        for line in c["stderr_tail"]:
            print(f"    {line}")
    print(f"\nreproducers and logs: {out_dir}")
    if args.json:
        print(json.dumps({"wall_s": wall, "tally": {p: dict(tally[p]) for p in paths},
                          "reasons": {p: dict(reasons[p]) for p in paths},
                          "crashes": crashes}))  # fmt: skip
    return 0 if total["crashes"] == total["hangs"] == total["bad"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
