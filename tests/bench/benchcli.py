"""The ``mallocgame bench`` command line as the bench's tests call it: a parser with only the
bench subcommand, a run of it, and the records of a JSON-lines file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mallocgame.cli import bench as cli


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mallocgame")
    sub = p.add_subparsers(dest="command", required=True)
    cli.add_parser(sub)
    return p


def run(argv: list[str]) -> int:
    """``mallocgame bench ARGV``'s exit code."""
    args = parser().parse_args(["bench", *argv])
    return args.fn(args)


def lines(path: Path) -> list[dict]:
    """The records of a JSON-lines file (blank lines skipped)."""
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
