"""``benchmarks/bench_agent.py`` with the agent solver of this checkout (``new``) or of an
older commit (``old``; default 6dc4a66, before optimize's adaptive budget split), everything
else this checkout's -- the comparison in benchmarks/RESULTS.md ("optimize: adaptive split").

    .venv/bin/python benchmarks/bench_agent_split.py new --seeds 2 --budget 5 --workloads resnet50.csv,resnet_train --no-fit-all --out runs/bench-split-new
    .venv/bin/python benchmarks/bench_agent_split.py old --policy mallocgame/memory/pretrained/policy.npz --seeds 2 --budget 5 --workloads resnet50.csv,resnet_train --no-fit-all --out runs/bench-split-old

``old@REV`` picks another commit. The old module is read with ``git show`` into a temporary
folder; the repository is not touched.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    if not argv or not (argv[0] == "new" or argv[0].startswith("old")):
        print(__doc__, file=sys.stderr)
        return 2
    variant, rest = argv[0], argv[1:]
    spec = importlib.util.spec_from_file_location(
        "bench_agent", REPO / "benchmarks" / "bench_agent.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    if variant.startswith("old"):
        rev = variant.partition("@")[2] or "6dc4a66"
        src = subprocess.check_output(
            ["git", "-C", str(REPO), "show", f"{rev}:mallocgame/agent_solver.py"]
        )
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "old_agent_solver.py").write_bytes(src)
            sys.path.insert(0, tmp)
            import old_agent_solver as old  # noqa: PLC0415

            bench.agent_solve, bench.load_agent = old.agent_solve, old.load_agent
            return bench.main(rest)
    return bench.main(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
