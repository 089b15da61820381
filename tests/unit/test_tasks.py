"""One meaning per task: the same options give the same Config through every door.

The doors: the command line (parsing, then config_from_args), a study's TOML
section (read_study), the sweep presets (reconstruct_base, texture_base, as
`nst sweep` and the studio's sweeps use them) and the studio's build_config.
Before nst.tasks each door said what a task means on its own, and they
disagreed: `reconstruct --init content` started from the photo on the command
line but from noise through a sweep; a texture's style weight was Config's
default on the command line but a study's [defaults] value through a sweep.
No torch, no network: only Configs are compared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nst.cli.options import build_parser, config_from_args, parse_arguments
from nst.config import RECONSTRUCT_WEIGHT, Config
from nst.errors import NstError
from nst.plans.study_config import read_study
from nst.plans.sweeps import Inputs, axis, layers_preset, params_preset, reconstruct_base, texture_base
from nst.samples import sample_path
from nst.serve.jobs import build_config
from nst.serve.library import Library
from nst.tasks import task_config

PHOTO = sample_path("tubingen")
PAINTING = sample_path("starry_night")


def cli_config(*argv: str) -> Config:
    return config_from_args(parse_arguments(build_parser(), list(argv)))


def study_config(tmp_path: Path, text: str) -> list[Config]:
    path = tmp_path / "study.toml"
    path.write_text('[inputs]\ncontent = ["sample:tubingen"]\nstyles = ["sample:starry_night"]\n' + text)
    return [spec.config for sweep in read_study(path).sweeps for spec in sweep.runs()]


def studio_config(tmp_path: Path, task: str, options: dict[str, Any]) -> Config:
    return build_config(Library(tmp_path / "library"), task, options, "auto")


def test_reconstruct_from_the_photo_is_the_same_through_every_door(tmp_path: Path) -> None:
    """`--init content` is an explicit choice: every door honours it (a sweep used to drop it)."""
    cli = cli_config("reconstruct", str(PHOTO), "-o", "out.png", "--init", "content", "--layer", "conv_2",
                     "--seed", "3", "--size", "64")
    (study,) = study_config(tmp_path, '[content_reconstruction]\ninit = "content"\nseed = 3\nsize = 64\n'
                                      'params = { content_layers = ["conv_2"] }\n')
    (sweep,) = layers_preset(Inputs((PHOTO,), ()), Config(init="content", seed=3, size=64),
                             [axis("content_layers", ["conv_2"])])
    studio = studio_config(tmp_path, "reconstruct", {"init": "content", "seed": 3, "size": 64,
                                                     "content_layers": ["conv_2"]})
    assert cli.init == "content"
    assert cli == study == sweep.runs()[0].config == studio
    assert cli.style_layers == () and cli.style_weight == 0 and cli.content_weight == RECONSTRUCT_WEIGHT


def test_a_texture_takes_its_own_style_weight_through_every_door(tmp_path: Path) -> None:
    """A study's [defaults] weights balance its transfers; a texture's one term
    keeps the task's weight there as on the command line (a sweep used to keep 1e5)."""
    cli = cli_config("texture", str(PAINTING), "-o", "out.png", "--seed", "0", "--size", "48")
    configs = study_config(tmp_path, "[defaults]\nstyle_weight = 1e5\ncontent_weight = 100\nseed = 0\n"
                                     "size = 48\n[texture_synthesis]\nparams = "
                                     '{ style_layers = ["conv_1-conv_5"] }\n')
    studio = studio_config(tmp_path, "texture", {"seed": 0, "size": 48})
    base = Config(style_weight=1e5, content_weight=100, seed=0, size=48)
    assert cli.style_weight == Config().style_weight and cli.content_weight == 0
    assert configs == [cli] == [texture_base(base)] == [studio]


def test_a_shared_base_keeps_its_run_settings_and_loses_the_other_terms() -> None:
    base = Config(init="content", steps=7, style_weight=5.0, content_weight=3.0, tv_weight=1.0,
                  optimizer="adam")
    rec = reconstruct_base(base)
    assert (rec.init, rec.steps, rec.tv_weight, rec.optimizer) == ("content", 7, 1.0, "adam")
    assert rec.style_weight == 0 and rec.style_layers == () and rec.content_weight == RECONSTRUCT_WEIGHT
    tex = texture_base(base)
    assert tex.init is None  # a texture has no photo to start from: a shared start of content falls back
    assert tex.content_layers == () and tex.content_weight == 0 and tex.style_weight == Config().style_weight


def test_the_generic_sweep_of_a_reconstruction_honours_its_start() -> None:
    (sweep,) = params_preset(Inputs((PHOTO,), (PAINTING,)), Config(task="reconstruct", init="content"),
                             [axis("seed", [1, 2])])
    assert {spec.config.init for spec in sweep.runs()} == {"content"}
    assert sweep.styles == ()


@pytest.mark.parametrize(("task", "given", "words"), [
    ("texture", {"alpha": 0.3}, "alpha does not apply"),
    ("texture", {"content_weight": 5.0}, "content-weight does not apply"),
    ("texture", {"preserve_color": "luminance"}, "preserve-color does not apply"),
    ("reconstruct", {"style_weight": 5.0}, "style-weight does not apply"),
    ("reconstruct", {"style_layers": ("conv_1",)}, "style-layers does not apply"),
    ("reconstruct", {"style_loss": "meancov"}, "style-loss does not apply"),
    ("reconstruct", {"content_layers": "conv_1,conv_2"}, "reconstruct takes one layer"),
    ("transfer", {"width": 64}, "width does not apply"),
    ("transfer", {"alpha": 0.3}, "alpha is the noise share of --init blend"),
    ("reconstruct", {"alpha": 0.3, "init": "noise"}, "alpha is the noise share of --init blend"),
    ("transfer", {"ema_decay": 0.5}, "ema-decay averages Adam's iterates"),
    ("transfer", {"history_size": 5, "optimizer": "adam"}, "history-size is L-BFGS's memory"),
    ("painting", {}, "unknown task 'painting'; expected one of"),
    ("transfer", {"colour": 1}, "unknown option"),
])
def test_an_option_the_task_would_ignore_is_refused_in_one_line(task: str, given: dict[str, Any],
                                                                words: str) -> None:
    with pytest.raises(NstError, match=words) as refused:
        task_config(task, given)
    assert "\n" not in str(refused.value)


def test_asking_for_what_the_task_does_anyway_is_not_refused() -> None:
    assert task_config("reconstruct", {"style_weight": 0.0, "style_layers": []}) == task_config("reconstruct")
    assert task_config("transfer", {"alpha": 0.3, "init": "blend"}).alpha == 0.3
    assert task_config("transfer", {"ema_decay": 0.5, "optimizer": "adam"}).ema_decay == 0.5


def test_the_command_line_and_the_studio_refuse_the_same_way(tmp_path: Path) -> None:
    with pytest.raises(NstError, match="alpha does not apply"):
        cli_config("texture", str(PAINTING), "-o", "out.png", "--alpha", "0.2")
    with pytest.raises(NstError, match="alpha does not apply"):
        studio_config(tmp_path, "texture", {"alpha": 0.2})
    with pytest.raises(NstError, match="reconstruct takes one layer"):
        cli_config("reconstruct", str(PHOTO), "-o", "out.png", "--layer", "conv_1,conv_2")


def test_the_studio_shows_the_defaults_the_runs_use(tmp_path: Path) -> None:
    for task in ("reconstruct", "texture", "transfer"):
        assert studio_config(tmp_path, task, {}) == task_config(task)
    assert task_config("transfer") == Config()
