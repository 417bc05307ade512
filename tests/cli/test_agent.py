"""The agent's subcommands (:mod:`mallocgame.cli.agent`): their usage errors, which need no
policy and no training (the commands themselves: tests/memory/solvers/test_agent.py and
tests/memory/test_train.py)."""

import pytest

from mallocgame.cli.main import main


@pytest.mark.parametrize(
    "argv",
    [
        ["optimize", "x.csv", "--budget", "-1"],
        ["optimize", "x.csv", "--agent-share", "0"],
        ["optimize", "x.csv", "--agent-share", "1.5"],
        ["train", "--minutes", "-2"],
        ["train", "--reward", "nope"],
    ],
)
def test_bad_option_values_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, text",
    [
        (["train", "--capacities", ","], "no capacity given"),
        (["train", "--val-every", "5", "--val-split", "train"], "must differ"),
        (["train", "--num-envs", "0"], "must be positive"),
    ],
)
def test_train_checks_its_options_before_training(argv, text, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mallocgame: error:") and text in err
    assert not (tmp_path / "run").exists()
