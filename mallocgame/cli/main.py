"""The ``mallocgame`` command line: one command, a subcommand per job, ``--help`` on each.

The subcommands live in one module per area (:mod:`~mallocgame.cli.memory`,
:mod:`~mallocgame.cli.agent`, :mod:`~mallocgame.cli.bench`, :mod:`~mallocgame.cli.rank`,
:mod:`~mallocgame.cli.rank_eval`, :mod:`~mallocgame.cli.rank_buckets`), each
registering its parsers on the subparsers built here; each parser's ``fn`` default is its
handler.

Exit codes: 0 success; 1 the result is invalid or a check failed; 2 bad input or usage.
"""

from __future__ import annotations

import argparse
import sys

from mallocgame.cli import agent, bench, memory, rank, rank_buckets, rank_eval
from mallocgame.cli.common import err
from mallocgame.errors import InputError, MallocGameError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mallocgame",
        description="Memory mapping of compiled ML programs as a game: extract workloads from "
        "XLA, solve, check, draw.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    memory.add_parsers(sub)
    agent.add_parsers(sub)
    bench.add_parser(sub)
    rank.add_parsers(sub)
    rank_eval.add_eval_parser(sub)
    rank_buckets.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except InputError as e:
        err(str(e))
        return 2
    except MallocGameError as e:
        err(str(e))
        return 1
    except KeyboardInterrupt:
        err("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
