"""The top-level parser and dispatch (:mod:`mallocgame.cli.main`): every area's subcommands are
registered, exit codes, and the layout rules of :mod:`mallocgame.cli` (no cycles, no private
names across modules, a light ``--help``)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from mallocgame.cli import memory
from mallocgame.cli.main import build_parser, main
from mallocgame.errors import InputError, MallocGameError

CLI_DIR = Path(memory.__file__).parent
COMMANDS = {
    "extract",
    "solve",
    "compare",
    "show",
    "validate",
    "list",
    "optimize",
    "train",
    "bench",
    "rank",
    "rank-eval",
    "rank-buckets",
}


def test_console_script_help():
    r = subprocess.run(
        [sys.executable, "-m", "mallocgame.cli.main", "solve", "--help"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and "--capacity" in r.stdout


def test_every_area_registers_its_subcommands():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == COMMANDS
    for name, p in sub.choices.items():
        assert callable(p.get_default("fn")), name


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


@pytest.mark.parametrize(
    "exc, code, text",
    [
        (InputError("bad thing", field="x"), 2, "bad thing"),
        (MallocGameError("failed check"), 1, "failed check"),
        (KeyboardInterrupt(), 130, "interrupted"),
    ],
)
def test_errors_become_exit_codes_and_one_line(monkeypatch, capsys, exc, code, text):
    def boom(args):
        raise exc

    monkeypatch.setattr(memory, "cmd_list", boom)  # read when the parser is built
    assert main(["list", "zoo"]) == code
    err = capsys.readouterr().err
    assert err.startswith("mallocgame: error:") and text in err
    assert len(err.strip().splitlines()) == 1


def _cli_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) for each ``from mallocgame.cli... import name`` in ``path``, anywhere."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mallocgame.cli"):
            for alias in node.names:
                out.append((node.module, alias.name))
    return out


@pytest.mark.parametrize("path", sorted(CLI_DIR.glob("*.py")), ids=lambda p: p.name)
def test_cli_modules_import_no_private_names_and_no_cycle(path):
    imports = _cli_imports(path)
    assert not [(m, n) for m, n in imports if n.startswith("_")], "a private name of another module"
    if path.name in ("__init__.py", "main.py"):
        return
    # an area (or a helper module) uses only the shared helpers: main imports the areas
    allowed = {"mallocgame.cli.common", "mallocgame.cli.argtypes"}
    assert {m for m, _ in imports} <= allowed, imports


def test_help_imports_no_heavy_dependency():
    code = (
        "import sys\n"
        "from mallocgame.cli.main import build_parser\n"
        "for c in (None, 'solve', 'optimize', 'train', 'bench', 'rank'):\n"
        "    p = build_parser()\n"
        "    p.format_help()\n"
        "heavy = ('jax', 'haiku', 'matplotlib', 'workloads.zoo', 'ortools', 'torch')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
