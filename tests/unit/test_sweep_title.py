"""The title of a report that `nst sweep` commands build up (cli.studies.sweep_title)."""

from __future__ import annotations

from nst.cli.studies import sweep_title


def test_a_first_sweep_names_its_kind() -> None:
    assert sweep_title(None, "weights") == "nst sweep weights"


def test_a_second_kind_of_sweep_joins_the_made_up_title() -> None:
    # Before: the report kept "nst sweep weights" whatever came after it.
    title = sweep_title("nst sweep weights", "layers")
    assert title == "nst sweeps: weights, layers"
    assert sweep_title(title, "seeds") == "nst sweeps: weights, layers, seeds"


def test_the_same_kind_again_keeps_the_title() -> None:
    assert sweep_title("nst sweep weights", "weights") == "nst sweep weights"
    assert sweep_title("nst sweeps: weights, layers", "layers") == "nst sweeps: weights, layers"


def test_a_chosen_title_is_kept() -> None:
    assert sweep_title("Mini study", "weights") == "Mini study"
    assert sweep_title("nst sweep of my own making", "layers") == "nst sweep of my own making"
