"""Sweeps, labelled grids and the study runner: parameter parsing, presets,
a miniature study end to end, resuming, and the CLI's errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nst.cli.app import main
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
from nst.results import StudyResults

C, S1, S2 = Path("c.jpg"), Path("s1.jpg"), Path("s2.jpg")


# ---------------------------------------------------------------- parameters

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


# ---------------------------------------------------------------- presets

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


# ---------------------------------------------------------------- grids

def _ink(image: Image.Image, box: tuple[int, int, int, int]) -> int:
    """Non-white pixels in a box: where text (or a picture) was drawn."""
    return int((np.asarray(image.crop(box).convert("L")) < 200).sum())


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


# ---------------------------------------------------------------- the miniature study

def _results(folder: Path) -> StudyResults:
    return StudyResults.from_dict(json.loads((folder / "results.json").read_text()))


def test_mini_study_writes_every_image_grid_and_result(mini_study: Path) -> None:
    results = _results(mini_study)
    sweeps = {s.name: s for s in results.sweeps}
    assert list(sweeps) == ["layers", "windows", "weights", "grid", "seeds-reconstruct", "seeds-texture",
                            "init", "alpha", "tv_weight"]
    assert [len(s.runs) for s in sweeps.values()] == [2, 2, 4, 2, 2, 2, 2, 3, 2]
    for sweep in sweeps.values():
        assert sweep.grid is not None
        with Image.open(mini_study / sweep.grid) as grid:
            assert grid.width > 128 and grid.height > 128
        for run in sweep.runs:
            with Image.open(mini_study / run.image) as image:
                assert max(image.size) == 32
            assert run.record.steps == 3 and len(run.record.history) == 3
            assert all(math.isfinite(v) for v in run.record.losses.values())
            assert run.record.wall_time_s >= run.record.run_time_s > 0
    assert sweeps["layers"].runs[1].record.config.content_layers == ("conv_5",)
    assert sweeps["alpha"].runs[2].record.config.init == "blend"
    assert sweeps["tv_weight"].runs[1].record.losses["tv"] > 0
    first = sweeps["weights"].runs[0].params
    assert first["content_weight"] == 10.0 and Path(first["styles"][0]).stem == "starry_night"
    # The grid's runs equal the weight sweep's content weight 10 row: copied, not rerun.
    assert [r.status for r in sweeps["grid"].runs] == ["copied", "copied"]
    assert results.count("ran") + results.count("copied") == 21
    assert (mini_study / "index.html").is_file()


def test_seed_pairs_differ_in_pixels_but_match_in_statistics(mini_study: Path) -> None:
    sweeps = {s.name: s for s in _results(mini_study).sweeps}
    for name, term in (("seeds-reconstruct", "content"), ("seeds-texture", "style")):
        (pair,) = sweeps[name].comparisons
        assert pair.term == term and pair.labels == ("seed 1", "seed 2")
        assert pair.pixel_difference > 5  # on the 0-255 scale
        assert pair.loss_difference == pytest.approx(abs(pair.loss_a - pair.loss_b))
        # Measured against each other, the two are far closer than noise is to the target.
        assert pair.start_loss is not None and 0 < pair.cross_loss < pair.start_loss / 2


def test_study_resumes_and_reruns_only_what_changed(mini_study: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import MINI_STUDY

    images = sorted((mini_study / "images").rglob("*.png"))
    stamps = {p: p.stat().st_mtime_ns for p in images}
    config = tmp_path / "again.toml"
    config.write_text(MINI_STUDY.replace("params = { alpha = [0, 0.5, 1] }",
                                         "params = { alpha = [0, 0.5, 1] }\nsteps = 2"))
    assert main(["study", str(config), "-o", str(mini_study), "--dry-run"]) == 0
    listing = capsys.readouterr().out
    assert "21 runs, 18 already done, 3 to run, 0 copied from an identical run" in listing
    assert main(["study", str(config), "-o", str(mini_study), "-q"]) == 0
    alpha = {p for p in images if p.parent.name == "alpha"}
    assert all(p.stat().st_mtime_ns == stamps[p] for p in images if p not in alpha)
    results = _results(mini_study)
    statuses = {s.name: {r.status for r in s.runs} for s in results.sweeps}
    assert statuses["alpha"] == {"ran"} and statuses["layers"] == {"resumed"}
    assert {r.record.steps for r in results.sweeps[7].runs} == {2}
    assert "seed 1 vs seed 2: pixel difference" in capsys.readouterr().out


# ---------------------------------------------------------------- command line

def test_sweep_command_runs_a_generic_sweep(tmp_path: Path, content_path: Path, style_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sweep"
    argv = ["sweep", "--content", str(content_path), "--style", str(style_path), "--size", "32",
            "--steps", "2", "--param", "content_weight=1,1e4", "-o", str(out), "-q"]
    assert main(argv) == 0
    (sweep,) = _results(out).sweeps
    assert [r.record.config.content_weight for r in sweep.runs] == [1.0, 1e4]
    assert (out / "grids" / "params.png").is_file() and (out / "index.html").is_file()


@pytest.mark.parametrize(("argv", "message"), [
    (["sweep", "--param", "colour=1,2"], "cannot sweep 'colour'"),
    (["sweep", "layers"], "sweep layers takes one content image, got none"),
    (["sweep", "windows", "--style", "s.jpg", "--window", "0"], "window must be between 1 and 16"),
    (["sweep", "layers", "--content", "missing.jpg"], "file not found: missing.jpg"),
    (["sweep", "--content", "c.jpg", "--style", "s.jpg", "--window", "3", "--param", "seed=1,2"],
     "--window only applies"),
])
def test_sweep_errors_are_one_line(argv: list[str], message: str, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "-o", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1 and "Traceback" not in error


@pytest.mark.parametrize(("text", "message"), [
    ("[content_reconstruction]\nstep = 3\n",
     "[content_reconstruction]: unknown key 'step' (did you mean steps?)"),
    ("[defaults]\nsize = -1\n", "[defaults]: size must be at least 1"),
    ("[inputs]\ncontent = ['nowhere.jpg']\n[content_reconstruction]\n", "image not found"),
    ("[inputs]\ncontent = ['sample:mona_lisa']\n", "unknown sample 'mona_lisa'"),
    ("[texture_synthesis]\nwindow = 'five'\n", "window: expected a number of layers"),
    ("title = 'x'\n", "the study has no parts"),
    ("[content_reconstruction\n", "not valid TOML"),
    ("[styletransfer]\n", "unknown key 'styletransfer' (did you mean style_transfer?)"),
])
def test_study_file_errors_name_file_and_key(text: str, message: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    assert main(["study", str(config), "-o", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert message in error and str(config) in error and error.count("\n") == 1


def test_example_study_file_plans_the_whole_write_up(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "study.toml"
    assert main(["study", str(example), "-o", str(tmp_path), "--dry-run"]) == 0
    listing = capsys.readouterr().out
    assert "60 runs, 0 already done, 57 to run, 3 copied from an identical run" in listing
    for name in ("layers/conv_16.png", "windows/conv_12-conv_16.png", "weights/content_weight-100000__",
                 "grid/tubingen__composition_vii.png", "seeds-texture/seed-2.png", "init/init-noise.png",
                 "alpha/alpha-0.5.png"):
        assert name in listing
