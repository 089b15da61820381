"""`nst batch`: every image of a folder, resume, failures reported at the end."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from clips import one_torch_thread, sliding_frames  # noqa: F401 (an autouse fixture)
from nst.cli.app import main
from nst.config import Config
from nst.errors import NstError
from nst.events import JobEvent
from nst.files.contact_sheet import COLUMNS, ROWS_PER_SHEET, write_contact_sheets
from nst.files.images import read_metadata
from nst.jobs.batch import plan, run_batch
from nst.jobs.request import sha256_file

CONFIG = Config(size=32, steps=5, device="cpu")


def _jobs(events: list[JobEvent]):
    """An event callback that keeps the job events."""
    return lambda event: events.append(event) if isinstance(event, JobEvent) else None


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Three small images (one in a subfolder) and a file that only looks like one."""
    folder = tmp_path / "photos"
    (folder / "more").mkdir(parents=True)
    frames = sliding_frames(count=3)
    frames[0].save(folder / "a.png")
    frames[1].save(folder / "b.jpg")
    frames[2].save(folder / "more" / "c.png")
    (folder / "broken.jpg").write_bytes(b"not a picture")
    (folder / "readme.txt").write_text("ignored")
    return folder


def test_batch_styles_readable_images_and_lists_the_rest(
    photos: Path, style_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    events: list[JobEvent] = []
    report = run_batch(CONFIG, photos, [style_path], out, on_event=_jobs(events))
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "index.jpg"]
    assert [item.label for item, _ in report.failed] == ["broken.jpg"]
    assert "not an image file" in report.failed[0][1]
    assert [e.status for e in events if e.status != "started"] == ["finished", "finished", "failed"]
    assert Image.open(out / "index.jpg").width > 300  # two pairs of thumbnails side by side
    assert read_metadata(out / "a.png")["inputs"][0] == {
        "role": "content", "path": str(photos / "a.png"), "sha256": sha256_file(photos / "a.png")}


def test_batch_resumes_without_redoing_finished_images(
    photos: Path, style_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    run_batch(CONFIG, photos, [style_path], out, recursive=True)
    assert (out / "more" / "c.png").exists()
    (out / "b.png").unlink()  # as if the first run had stopped before b
    made = {p: p.stat().st_mtime_ns for p in (out / "a.png", out / "more" / "c.png")}
    events: list[JobEvent] = []
    report = run_batch(CONFIG, photos, [style_path], out, recursive=True, on_event=_jobs(events))
    assert {e.label: e.status for e in events if e.status != "started"} == {
        "a.png": "skipped", "b.jpg": "finished", "broken.jpg": "failed", "more/c.png": "skipped"}
    assert all(p.stat().st_mtime_ns == t for p, t in made.items())
    assert len(report.done) == 1 and len(report.skipped) == 2


def test_outputs_of_other_settings_are_not_silently_replaced(
    photos: Path, style_path: Path, second_style_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    run_batch(CONFIG, photos, [style_path], out)
    with pytest.raises(NstError, match="other settings.*--overwrite"):
        run_batch(CONFIG, photos, [second_style_path], out)
    report = run_batch(CONFIG, photos, [second_style_path], out, overwrite=True)
    assert len(report.done) == 2
    assert read_metadata(out / "a.png")["inputs"][1]["path"] == str(second_style_path)


def test_clashing_names_get_their_extension(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("x.png", "x.jpg", "y.png"):
        Image.new("RGB", (8, 8)).save(folder / name)
    outputs = sorted(item.output.name for item in plan(folder, tmp_path / "out", False, "png"))
    assert outputs == ["x_jpg.png", "x_png.png", "y.png"]


def test_output_folder_inside_the_input_is_not_an_input(photos: Path, style_path: Path) -> None:
    out = photos / "styled"
    run_batch(CONFIG, photos, [style_path], out, recursive=True)
    report = run_batch(CONFIG, photos, [style_path], out, recursive=True)
    assert all("styled" not in item.label for item in report.skipped + report.done)


def test_cli_reports_failures_at_the_end_with_status_2(
    photos: Path, style_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    status = main(["batch", str(photos), str(style_path), "-o", str(out), "--size", "32", "--steps", "3",
                   "--format", "jpg"])
    err = capsys.readouterr().err
    assert status == 2
    assert "styled 2 image(s)" in err and "1 failed" in err
    assert err.strip().splitlines()[-1].startswith("nst: error: broken.jpg: not an image file")
    assert (out / "a.jpg").exists() and (out / "a.jpg.json").exists()


@pytest.mark.parametrize("where, message", [
    ("missing", "input folder not found"),
    ("same", "must differ from the input folder"),
    ("empty", "no images in"),
])
def test_cli_bad_folders(where: str, message: str, style_path: Path, tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / where
    if where != "missing":
        source.mkdir()
    out = source if where == "same" else tmp_path / "out"
    status = main(["batch", str(source), str(style_path), "-o", str(out), "-q"])
    assert status == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_contact_sheet_pages_hold_every_pair(tmp_path: Path) -> None:
    picture = tmp_path / "p.png"
    Image.new("RGB", (40, 30), "red").save(picture)
    pairs = [(picture, picture, f"image {n}.png") for n in range(COLUMNS * ROWS_PER_SHEET + 1)]
    sheets = write_contact_sheets(pairs, tmp_path / "index.jpg")
    assert [s.name for s in sheets] == ["index.jpg", "index-2.jpg"]
    first, second = (Image.open(s) for s in sheets)
    assert first.height > second.height  # ten rows, then one
