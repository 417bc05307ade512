import dataclasses

import pytest

from agent.config import Config, SearchConfig


@pytest.mark.parametrize(
    ("kwargs", "field", "value"),
    [
        ({"num_simulations": 0}, "num_simulations", "0"),
        ({"num_simulations": -3}, "num_simulations", "-3"),
        ({"num_simulations": 2.5}, "num_simulations", "2.5"),
        ({"num_simulations": True}, "num_simulations", "True"),
        (
            {"num_simulations": 4, "max_num_considered_actions": 8},
            "max_num_considered_actions",
            "8",
        ),
        ({"max_num_considered_actions": 0}, "max_num_considered_actions", "0"),
        ({"max_depth": 0}, "max_depth", "0"),
        ({"policy": "alphazero"}, "policy", "alphazero"),
        ({"discount": 1.5}, "discount", "1.5"),
        ({"discount": float("nan")}, "discount", "nan"),
        ({"gumbel_scale": -1.0}, "gumbel_scale", "-1.0"),
        ({"dirichlet_alpha": 0.0}, "dirichlet_alpha", "0.0"),
        ({"dirichlet_fraction": 2.0}, "dirichlet_fraction", "2.0"),
        ({"pb_c_base": 0.0}, "pb_c_base", "0.0"),
        ({"temperature": -0.5}, "temperature", "-0.5"),
    ],
)
def test_invalid_search_config_names_the_field_and_value(kwargs, field, value):
    with pytest.raises(ValueError, match=rf"SearchConfig\.{field}\b.*{value}"):
        SearchConfig(**kwargs)


def test_considered_actions_default_follows_num_simulations():
    assert SearchConfig().considered_actions == 16
    assert SearchConfig(num_simulations=8).considered_actions == 8  # valid, as before
    assert SearchConfig(num_simulations=64).considered_actions == 16
    cfg = SearchConfig(num_simulations=8, max_num_considered_actions=4)
    assert cfg.considered_actions == 4
    # replacing the simulations re-derives the default; an explicit width is checked again
    assert Config().replace(search__num_simulations=4).search.considered_actions == 4
    with pytest.raises(ValueError, match="max_num_considered_actions"):
        dataclasses.replace(cfg, num_simulations=2)
    # the edge: as many considered actions as simulations
    assert SearchConfig(num_simulations=3, max_num_considered_actions=3).considered_actions == 3


def test_round_trip_and_older_files():
    cfg = Config().replace(search__num_simulations=8, search__max_num_considered_actions=2)
    assert Config.from_dict(cfg.to_dict()) == cfg
    assert Config.from_dict(Config().to_dict()) == Config()
    # older files stored 16 considered actions whatever the simulations: capped on load
    old = Config().to_dict()
    old["search"].update(num_simulations=8, max_num_considered_actions=16)
    assert Config.from_dict(old).search.considered_actions == 8
    old["search"].update(num_simulations=0)
    with pytest.raises(ValueError, match="num_simulations"):
        Config.from_dict(old)
