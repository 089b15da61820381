"""Sweeps and labelled grids: parameter parsing, the presets' runs, grids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nst.config import RECONSTRUCT_WEIGHT, Config
from nst.errors import NstError
from nst.files.grid import Cell, grid_image, wrap
from nst.plans.sweeps import (
    Inputs,
    alpha_preset,
    axis,
    layers_preset,
    params_preset,
    parse_param,
    sliding_windows,
    weights_preset,
    windows_preset,
)


def _ink(image: Image.Image, box: tuple[int, int, int, int]) -> int:
    """Non-white pixels in a box: where text (or a picture) was drawn."""
    return int((np.asarray(image.crop(box).convert("L")) < 200).sum())

C, S1, S2 = Path("c.jpg"), Path("s1.jpg"), Path("s2.jpg")


def test_parse_param_reads_values_by_the_parameters_type() -> None:
    assert [v["content_weight"] for v in parse_param("content-weight=1,1e3").values] == [1.0, 1000.0]
    assert [v["steps"] for v in parse_param("steps=5,10").values] == [5, 10]
    layers = parse_param("style_layers=conv_1-conv_3;relu4_2,conv_5")
    assert [v["style_layers"] for v in layers.values] == [
        ("conv_1", "conv_2", "conv_3"), ("relu_10", "conv_5")]
    assert layers.labels == ("conv_1-conv_3", "relu_10,conv_5")
    blend = parse_param("style_blend=1,0;0.5,0.5")
    assert [v["style_blend"] for v in blend.values] == [(1.0, 0.0), (0.5, 0.5)]
    assert [v["styles"] for v in parse_param("style=a.jpg,b.jpg").values] == [(Path("a.jpg"),),
                                                                            (Path("b.jpg"),)]


@pytest.mark.parametrize(("text", "message"), [
    ("content_weigth=1,2", "did you mean content_weight"),
    ("steps=10,1.5", "steps: expected an integer, got '1.5'"),
    ("tv_weight=0,lots", "tv_weight: expected a number, got 'lots'"),
    ("seed", "expects NAME=V1,V2"),
    ("seed=", "has no values"),
    ("style_layers=conv_99", "unknown layer 'conv_99'"),
])
def test_parse_param_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(NstError, match=message):
        parse_param(text)


def test_invalid_values_fail_before_any_run() -> None:
    sweep = params_preset(Inputs((C,), (S1,)), Config(), [parse_param("content_weight=1,-5")])[0]
    with pytest.raises(NstError, match="content weight -5: content-weight must not be negative"):
        sweep.runs()


def test_layer_sweep_reconstructs_at_each_of_the_16_layers_in_a_4x4_grid() -> None:
    (sweep,) = layers_preset(Inputs((C,)), Config(steps=7))
    runs = sweep.runs()
    assert [r.config.content_layers for r in runs] == [(f"conv_{i}",) for i in range(1, 17)]
    assert {r.config.task for r in runs} == {"reconstruct"}
    assert {(r.config.content_weight, r.config.style_weight, r.config.steps) for r in runs} == {
        (RECONSTRUCT_WEIGHT, 0.0, 7)}
    assert sweep.columns == 4 and runs[0].slug == "conv_1"


def test_window_sweep_slides_k_layers_from_conv_1_to_conv_16() -> None:
    assert sliding_windows(5)[0] == "conv_1-conv_5" and sliding_windows(5)[-1] == "conv_12-conv_16"
    assert len(sliding_windows(3)) == 14
    (sweep,) = windows_preset(Inputs((), (S1,)), Config(init="content"))
    runs = sweep.runs()
    assert runs[1].config.style_layers == tuple(f"conv_{i}" for i in range(2, 7))
    assert {(r.config.task, r.config.init, r.content) for r in runs} == {("texture", None, None)}
    with pytest.raises(NstError, match="window must be between 1 and 16"):
        sliding_windows(17)


def test_weight_sweep_rows_are_content_weights_columns_are_pairs() -> None:
    (sweep,) = weights_preset(Inputs((C,), (S1, S2)), Config())
    runs = sweep.runs()
    assert len(runs) == 6 * 2
    assert [(r.config.content_weight, r.styles) for r in runs[:3]] == [
        (1.0, (S1,)), (1.0, (S2,)), (10.0, (S1,))]
    assert {r.config.style_weight for r in runs} == {1e6}
    assert runs[1].labels == ("content weight 1", "c + s2")
    with pytest.raises(NstError, match="2 content and 3 style"):
        weights_preset(Inputs((C, C), (S1, S2, S1)), Config())


def test_a_given_axis_replaces_the_presets_axis_and_others_are_added() -> None:
    given = [axis("alpha", [0.25, 0.75]), parse_param("seed=3,4")]
    (sweep,) = alpha_preset(Inputs((C,), (S1,)), Config(), given)
    runs = sweep.runs()
    assert [(r.config.alpha, r.config.seed) for r in runs] == [(0.25, 3), (0.25, 4), (0.75, 3), (0.75, 4)]
    assert {r.config.init for r in runs} == {"blend"} and sweep.slider


def test_runs_of_a_sweep_share_a_seed_unless_one_is_given() -> None:
    (sweep,) = params_preset(Inputs((C,), (S1,)), Config(), [parse_param("tv_weight=0,1")])
    assert {r.config.seed for r in sweep.runs()} == {0}
    (sweep,) = params_preset(Inputs((C,), (S1,)), Config(seed=9), [parse_param("tv_weight=0,1")])
    assert {r.config.seed for r in sweep.runs()} == {9}


def test_generic_sweep_turns_several_inputs_into_axes() -> None:
    (sweep,) = params_preset(Inputs((C,), (S1, S2)), Config(), [])
    assert [(r.content, r.styles) for r in sweep.runs()] == [(C, (S1,)), (C, (S2,))]
    with pytest.raises(NstError, match="nothing to sweep"):
        params_preset(Inputs((C,), (S1,)), Config(), [])
    with pytest.raises(NstError, match="sweeping alpha needs --init blend"):
        params_preset(Inputs((C,), (S1,)), Config(init="noise"), [parse_param("alpha=0,1")])


def test_grid_draws_each_caption_under_its_picture() -> None:
    pictures = [Cell(Image.new("RGB", (64, 48), (40, 90, 160)), (f"conv_{i}",)) for i in range(1, 17)]
    labelled = grid_image(wrap(pictures), title="Layers")
    plain = grid_image(wrap([Cell(c.image) for c in pictures]))
    assert len(wrap(pictures)) == 4 and all(len(row) == 4 for row in wrap(pictures))
    assert labelled.height > plain.height  # room for a title and a caption line per row
    # 64 px cells are shown at 128 px (x2, nearest); the caption sits below each picture.
    first_caption = (8, labelled.height // 4 - 30, 8 + 128, labelled.height // 4)
    assert _ink(labelled, first_caption) > 20


def test_grid_labels_rows_and_columns() -> None:
    cell = Cell(Image.new("RGB", (128, 96), (200, 60, 60)))
    sheet = grid_image([[cell, cell], [cell, None]], ["content weight 1", "content weight 100000"],
                       ["tubingen + starry_night", "tubingen + great_wave"])
    assert _ink(sheet, (0, 0, 100, sheet.height)) > 50  # row labels at the left
    assert _ink(sheet, (sheet.width - 130, 0, sheet.width, 30)) > 20  # a column label on top
    assert _ink(sheet, (sheet.width - 130, sheet.height - 100, sheet.width, sheet.height)) == 0  # empty cell
