"""`nst train-decoder` end to end: a tiny decoder trained for seconds on tiny images
against the real VGG19 (Caffe weights, only as deep as relu3_1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from nst.cli import main
from nst.core.decoder import load_decoder
from nst.errors import NstError
from nst.jobs.decoder_state import checkpoint_path
from nst.jobs.train_decoder import TrainProgress, train_decoder
from nst.jobs.train_options import TrainOptions

TINY = TrainOptions(steps=12, batch_size=4, crop=32, lr=1e-3, level="relu3_1", width=8,
                    precision="fp32", checkpoint_every=4, eval_every=6)


def _smooth_images(folder: Path, count: int, seed: int, size: tuple[int, int] = (56, 40)) -> Path:
    """Photos' stand-ins: smooth colour fields (random 4x3 grids, bicubically enlarged)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index in range(count):
        grid = Image.fromarray((rng.random((3, 4, 3)) * 255).astype(np.uint8))
        grid.resize(size, Image.Resampling.BICUBIC).save(folder / f"image{index:02d}.png")
    return folder


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    return _smooth_images(tmp_path / "content", 8, 0), _smooth_images(tmp_path / "style", 3, 1, (40, 40))


def _record(into: list[TrainProgress], stop_at: int | None = None):  # type: ignore[no-untyped-def]
    def on_progress(progress: TrainProgress) -> None:
        into.append(progress)
        if progress.step == stop_at:
            raise KeyboardInterrupt

    return on_progress


def test_the_reconstruction_loss_falls_and_the_decoder_loads(folders: tuple[Path, Path],
                                                            tmp_path: Path) -> None:
    content, style = folders
    seen: list[TrainProgress] = []
    output = tmp_path / "d.safetensors"
    report = train_decoder([content], [style], output, TrainOptions(**{**TINY.__dict__, "steps": 40}),
                           _record(seen))
    first = np.mean([p.losses["pixel"] for p in seen[:5]])
    last = np.mean([p.losses["pixel"] for p in seen[-5:]])
    # From a random decoder's grey to the colour fields' broad colours: a fall by half
    # or more (40 Adam steps at 1e-3 do far better than that on every CPU kind).
    assert last < 0.5 * first, (first, last)
    assert report.steps == 40 and report.resumed_from == 0 and report.held_out >= 1
    assert [step for step, _ in report.psnr_history][-1] == 40
    assert load_decoder(output).spec.width == 8


def test_a_stopped_run_resumes_at_its_step_and_ends_with_the_same_weights(
        folders: tuple[Path, Path], tmp_path: Path) -> None:
    """The checkpoint keeps the weights (float32), Adam's moments and the data
    generator's state, so the resumed run does the very same arithmetic as one that
    never stopped, on the same CPU and thread count: the weights agree exactly."""
    content, style = folders
    whole = tmp_path / "whole.safetensors"
    train_decoder([content], [style], whole, TINY)
    pieces = tmp_path / "pieces.safetensors"
    seen: list[TrainProgress] = []
    with pytest.raises(KeyboardInterrupt):
        train_decoder([content], [style], pieces, TINY, _record(seen, stop_at=7))
    assert seen[-1].step == 7 and checkpoint_path(pieces).exists()
    report = train_decoder([content], [style], pieces, TINY, _record(seen))
    assert report.resumed_from == 7 and seen[-1].step == 12 and seen[7].step == 8  # went on at 8, not 1
    a, b = load_file(str(checkpoint_path(whole))), load_file(str(checkpoint_path(pieces)))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_a_checkpoint_of_other_options_is_refused_in_one_line(folders: tuple[Path, Path],
                                                              tmp_path: Path) -> None:
    content, style = folders
    output = tmp_path / "d.safetensors"
    train_decoder([content], [style], output, TrainOptions(**{**TINY.__dict__, "steps": 2}))
    with pytest.raises(NstError) as refused:
        train_decoder([content], [style], output, TrainOptions(**{**TINY.__dict__, "width": 4}))
    assert "other options (width 8)" in str(refused.value) and "\n" not in str(refused.value)


def test_the_command_trains_and_a_larger_steps_trains_on(folders: tuple[Path, Path], tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    content, style = folders
    output = tmp_path / "d.safetensors"
    argv = ["train-decoder", str(content), "--style-dir", str(style), "-o", str(output), "--crop", "32",
            "--batch-size", "4", "--level", "relu3_1", "--width", "8", "--precision", "fp32",
            "--threads", "1"]
    assert main([*argv, "--steps", "3"]) == 0
    assert main([*argv, "--steps", "5"]) == 0
    err = capsys.readouterr().err
    assert "resumed at step 3" in err and "held-out reconstruction PSNR" in err


@pytest.mark.parametrize(("extra", "words"), [
    (["--crop", "30"], "--crop must be a multiple of 8"),
    (["--steps", "0"], "--steps must be at least 1"),
    (["--level", "relu5_1"], "--level must be relu3_1 or relu4_1"),
    (["--width", "2"], "--width must be between"),
    (["--lr", "-1"], "--lr must be a positive number"),
    (["--threads", "0"], "expected a whole number of at least 1"),
])
def test_the_command_refuses_bad_options_in_one_line(folders: tuple[Path, Path], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str],
                                                      extra: list[str], words: str) -> None:
    content, _ = folders
    output = tmp_path / "d.safetensors"
    assert main(["train-decoder", str(content), "-o", str(output), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "\n" not in err and "Traceback" not in err
    assert not output.exists() and not checkpoint_path(output).exists()


def test_the_command_refuses_missing_folders_and_other_outputs(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train-decoder", str(tmp_path / "absent"), "-o", str(tmp_path / "d.safetensors")]) == 2
    assert "not a folder of images" in capsys.readouterr().err
    folder = _smooth_images(tmp_path / "c", 2, 0)
    assert main(["train-decoder", str(folder), "-o", str(tmp_path / "d.pth")]) == 2
    assert "written as .safetensors" in capsys.readouterr().err
