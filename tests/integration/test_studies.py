"""Sweeps, labelled grids and the study runner: parameter parsing, presets,
a miniature study end to end, resuming, and the CLI's errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from PIL import Image

from nst.cli.app import main
from nst.results import StudyResults

# ---------------------------------------------------------------- parameters


# ---------------------------------------------------------------- presets


# ---------------------------------------------------------------- grids



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
