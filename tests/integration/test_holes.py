"""Issue 12, "What was found, tried as a new user would": each hole, through the
real command line (`nst.cli.main`), at the door a user would meet it.

Every case ends in exit 0 (it works) or a refusal: exit 2 and exactly one line
on stderr, never a traceback, and nothing the user had is lost. Runs are tiny
(32 px, 1 step, CPU) so the file stays well under a minute.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageFile

from clips import one_torch_thread, sliding_frames, truncated_png  # noqa: F401 (an autouse fixture)
from nst.cli import main
from nst.files.atomic import host_tag
from nst.jobs.folders import LOCK_NAME
from nst.jobs.video import WorkFolder

TINY = ["--size", "32", "--steps", "1", "--device", "cpu", "-q"]
CPU_TEXT = ("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
            "you tried to allocate 123456789012 bytes. Error code 12 (Cannot allocate memory)")


def refused(code: int, capsys: pytest.CaptureFixture[str], *fragments: str) -> str:
    """The run was refused: status 2, one line on stderr naming `fragments`, no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert code == 2, f"status {code}: {err}"
    assert len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def worked(code: int, capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert code == 0, f"status {code}: {err}"
    return err


def ok_or_refused(code: int, capsys: pytest.CaptureFixture[str]) -> str:
    """Either it works or it is refused in one line; never a traceback or status 1."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert code in (0, 2), f"status {code}: {err}"
    if code == 2:
        assert len(err.strip().splitlines()) == 1, err
    return err


@pytest.fixture
def pics(tmp_path: Path) -> dict[str, Path]:
    """A small photo and a small style, in tmp_path/dir."""
    folder = tmp_path / "dir"
    folder.mkdir()
    frames = sliding_frames(count=2, width=48, height=32)
    frames[0].save(folder / "photo.png")
    frames[1].resize((40, 40)).save(folder / "style.png")
    return {"photo": folder / "photo.png", "style": folder / "style.png"}


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A folder of two small photos."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for index, frame in enumerate(sliding_frames(count=2)):
        frame.save(folder / f"p{index}.png")
    return folder


@pytest.fixture
def frame_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    for number, frame in enumerate(sliding_frames(count=3), start=1):
        frame.save(folder / f"{number:04d}.png")
    return folder


def _decoded(self: object, *args: object, **kwargs: object) -> None:
    raise AssertionError("pixels were decoded or resized before the size was checked")


def forbid_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any image's pixels are decoded or resized."""
    monkeypatch.setattr(ImageFile.ImageFile, "load", _decoded)
    monkeypatch.setattr(Image.Image, "load", _decoded)
    monkeypatch.setattr(Image.Image, "resize", _decoded)


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    forbid_decoding(monkeypatch)


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def hold_lock() -> Iterator[Callable[[Path], int]]:
    """hold_lock(folder): another live process holds the nst lock of `folder`; returns its pid."""
    held: list[subprocess.Popen[str]] = []

    def hold(folder: Path) -> int:
        script = textwrap.dedent(f"""
            import sys, time
            from pathlib import Path
            from nst.jobs.folders import FolderLock
            with FolderLock(Path({str(folder)!r}), "nst batch other-run"):
                print("locked", flush=True)
                time.sleep(120)
        """)
        process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        held.append(process)
        assert process.stdout is not None and process.stdout.readline().strip() == "locked"
        return process.pid

    yield hold
    for process in held:
        process.kill()
        process.wait()


# --------------------------------------------------------------------- data loss


@pytest.mark.parametrize("spelling", ["dotted", "symlink", "hardlink", "style"])
def test_transfer_never_writes_over_an_input_however_it_is_spelled(
    spelling: str, pics: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    photo, style = pics["photo"], pics["style"]
    monkeypatch.chdir(photo.parent)
    content, output = "photo.png", {"dotted": "../dir/./photo.png", "style": "style.png"}.get(spelling)
    if spelling == "symlink":
        os.symlink("photo.png", "link.png")
        output = "link.png"
    elif spelling == "hardlink":
        os.link("photo.png", "hard.png")
        output = "hard.png"
    before = {p: p.read_bytes() for p in (photo, style)}
    refused(main(["transfer", content, "style.png", "-o", str(output), *TINY]), capsys, "input")
    assert {p: p.read_bytes() for p in (photo, style)} == before


@pytest.mark.parametrize("spelling", ["same", "dotted"])
def test_batch_output_folder_equal_to_the_input_folder_is_refused(
    spelling: str, photos: Path, pics: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    before = {p: p.read_bytes() for p in photos.iterdir()}
    output = photos if spelling == "same" else photos / ".." / photos.name / "."
    refused(main(["batch", str(photos), str(pics["style"]), "-o", str(output), *TINY]), capsys)
    assert {p: p.read_bytes() for p in photos.iterdir()} == before


def test_batch_output_landing_on_a_style_image_is_refused(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    style = out / "p0.png"  # where the output of photos/p0.png would go
    sliding_frames(count=1)[0].save(style)
    before = style.read_bytes()
    refused(main(["batch", str(photos), str(style), "-o", str(out), *TINY]), capsys, "p0.png")
    assert style.read_bytes() == before


def test_batch_output_landing_on_a_users_file_is_refused(
    photos: Path, pics: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    mine = out / "p1.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(mine)
    before = mine.read_bytes()
    refused(main(["batch", str(photos), str(pics["style"]), "-o", str(out), *TINY]), capsys, "p1.png")
    assert mine.read_bytes() == before


@pytest.mark.parametrize("kind", ["gif", "folder"])
def test_video_output_equal_to_the_input_is_refused(
    kind: str, frame_folder: Path, pics: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = frame_folder
    if kind == "gif":
        source = tmp_path / "clip.gif"
        sliding_frames(count=3)[0].save(source, save_all=True, append_images=sliding_frames(count=3)[1:])
    before = source.read_bytes() if source.is_file() else {p: p.read_bytes() for p in source.iterdir()}
    fragment = "input" if kind == "gif" else str(source)  # a folder of frames is refused as not empty
    refused(main(["video", str(source), str(pics["style"]), "-o", str(source), *TINY]), capsys, fragment)
    after = source.read_bytes() if source.is_file() else {p: p.read_bytes() for p in source.iterdir()}
    assert after == before
    assert not WorkFolder(source).path.exists()


@pytest.mark.parametrize("force", [False, True])
def test_sweep_never_writes_a_run_image_over_a_content_image(
    force: bool, pics: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sweep"
    content = out / "images" / "params" / "tv_weight-0.png"  # where run "tv weight 0" goes
    content.parent.mkdir(parents=True)
    content.write_bytes(pics["photo"].read_bytes())
    before = content.read_bytes()
    argv = ["sweep", "--content", str(content), "--style", str(pics["style"]), "--param", "tv_weight=0,1",
            "-o", str(out), *TINY, *(["--force"] if force else [])]
    refused(main(argv), capsys)
    assert content.read_bytes() == before


# ------------------------------------------------------- memory before checks


@pytest.mark.parametrize("option", ["--size", "--style-size"])
def test_a_huge_size_is_refused_before_anything_is_decoded(
    option: str, pics: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], no_decoding: None
) -> None:
    out = tmp_path / "o.png"
    argv = ["transfer", str(pics["photo"]), str(pics["style"]), "-o", str(out), "--steps", "1",
            "--device", "cpu", "-q", option, "100000"]
    refused(main(argv), capsys, "--max-pixels")
    assert not out.exists()


def test_texture_of_a_huge_canvas_is_refused_before_anything_is_decoded(
    pics: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], no_decoding: None
) -> None:
    argv = ["texture", str(pics["style"]), "-o", str(tmp_path / "t.png"), "--width", "100000",
            "--height", "100000", "--steps", "1", "--device", "cpu", "-q"]
    refused(main(argv), capsys, "--max-pixels")


@pytest.mark.parametrize(("kind", "forbidden"), [
    ("gif", "resizing"), ("folder", "resizing"), ("folder", "decoding")])
def test_video_at_a_huge_size_is_refused_before_any_frame_is_decoded(
    kind: str, forbidden: str, frame_folder: Path, pics: dict[str, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    source = frame_folder
    if kind == "gif":
        source = tmp_path / "clip.gif"
        frames = sliding_frames(count=3)
        frames[0].save(source, save_all=True, append_images=frames[1:])
    if forbidden == "decoding":
        forbid_decoding(monkeypatch)
    else:
        monkeypatch.setattr(Image.Image, "resize", _decoded)
    out = tmp_path / "out.gif"
    argv = ["video", str(source), str(pics["style"]), "-o", str(out), "--size", "100000",
            "--steps", "1", "--device", "cpu", "-q"]
    refused(main(argv), capsys, "--max-pixels")
    assert not out.exists() and not WorkFolder(out).path.exists()


def test_a_style_over_the_pixel_limit_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    content, style = tmp_path / "c.png", tmp_path / "s.png"
    Image.new("RGB", (32, 20), (9, 9, 9)).save(content)  # 640 pixels: under the limit
    Image.new("RGB", (64, 64), (200, 9, 9)).save(style)  # 4,096 pixels: over it
    argv = ["transfer", str(content), str(style), "-o", str(tmp_path / "o.png"), "--max-pixels", "1000",
            "--style-size", "16", *TINY]
    err = refused(main(argv), capsys, "--max-pixels", "s.png")
    assert "truncated or corrupt" not in err


def test_a_study_of_a_huge_size_is_refused_before_anything_is_decoded(
    pics: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], no_decoding: None
) -> None:
    study = tmp_path / "big.toml"
    study.write_text(textwrap.dedent(f"""
        title = "Big"
        [inputs]
        content = [{str(pics['photo'])!r}]
        styles = [{str(pics['style'])!r}]
        [defaults]
        size = 100000
        steps = 1
        [[sweep]]
        title = "TV"
        params = {{ tv_weight = [0, 1] }}
    """))
    out = tmp_path / "big-out"
    refused(main(["study", str(study), "-o", str(out), "--device", "cpu", "-q"]), capsys, "--max-pixels")
    assert not (out / "images").exists()


def test_the_pixel_limit_of_an_input_is_named_not_called_corruption(
    tmp_path: Path, pics: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    big = tmp_path / "big.png"
    Image.new("RGB", (64, 48), (5, 5, 5)).save(big)
    argv = ["transfer", str(big), str(pics["style"]), "-o", str(tmp_path / "o.png"), "--max-pixels", "1000",
            *TINY]
    err = refused(main(argv), capsys, "raise it with --max-pixels", "big.png")
    assert "truncated or corrupt" not in err and "cannot decode" not in err


# ------------------------------------------------------ too small for the network


@pytest.mark.parametrize("size", ["256", "3200"])
def test_a_panorama_works_or_is_refused_in_one_line(
    size: str, tmp_path: Path, pics: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    panorama, out = tmp_path / "pano.png", tmp_path / "o.png"
    Image.new("RGB", (2000, 20), (90, 120, 200)).save(panorama)
    argv = ["transfer", str(panorama), str(pics["style"]), "-o", str(out), "--size", size,
            "--style-size", "32", "--steps", "1", "--device", "cpu", "-q"]
    code = main(argv)
    ok_or_refused(code, capsys)
    assert out.exists() == (code == 0)


@pytest.mark.parametrize("size", ["1", "2", "3", "4"])
def test_tiny_sizes_work_or_are_refused_in_one_line(
    size: str, tmp_path: Path, pics: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o.png"
    argv = ["transfer", str(pics["photo"]), str(pics["style"]), "-o", str(out), "--size", size,
            "--steps", "1", "--device", "cpu", "-q"]
    code = main(argv)
    ok_or_refused(code, capsys)
    assert out.exists() == (code == 0)


def test_start_size_1_works(tmp_path: Path, pics: dict[str, Path],
                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o.png"
    argv = ["transfer", str(pics["photo"]), str(pics["style"]), "-o", str(out), "--start-size", "1", *TINY]
    worked(main(argv), capsys)
    assert out.exists()


def test_reconstruct_from_conv_16_at_12_px_names_layer_and_side(
    tmp_path: Path, pics: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["reconstruct", str(pics["photo"]), "--layer", "conv_16", "-o", str(tmp_path / "r.png"),
            "--size", "12", "--steps", "1", "--device", "cpu", "-q"]
    refused(main(argv), capsys, "conv_16", "16 px")


def test_a_one_pixel_texture_is_refused(tmp_path: Path, pics: dict[str, Path],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["texture", str(pics["style"]), "-o", str(tmp_path / "t.png"), "--width", "1", "--height", "1",
            "--steps", "1", "--device", "cpu", "-q"]
    refused(main(argv), capsys)
    assert not (tmp_path / "t.png").exists()


def test_a_sweep_over_tiny_sizes_is_refused(tmp_path: Path, pics: dict[str, Path],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sweep"
    argv = ["sweep", "--content", str(pics["photo"]), "--style", str(pics["style"]), "--param", "size=1,2",
            "-o", str(out), "--steps", "1", "--device", "cpu", "-q"]
    refused(main(argv), capsys)
    assert not (out / "images").exists()


# ------------------------------------------------------------- other tracebacks


@pytest.mark.parametrize("door", ["batch", "video", "texture"])
def test_a_seed_past_2_64_is_one_line_at_every_door(
    door: str, photos: Path, frame_folder: Path, pics: dict[str, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str]
) -> None:
    first = {"batch": [str(photos)], "video": [str(frame_folder)], "texture": []}[door]
    output = tmp_path / {"batch": "out", "video": "out.gif", "texture": "t.png"}[door]
    argv = [door, *first, str(pics["style"]), "-o", str(output), "--seed", str(2**64), *TINY]
    refused(main(argv), capsys, "seed")
    assert not output.exists()


def test_an_absurd_frame_rate_is_one_line_and_leaves_no_work_folder(
    frame_folder: Path, pics: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.gif"
    refused(main(["video", str(frame_folder), str(pics["style"]), "-o", str(out), "--fps", "1e300", *TINY]),
            capsys, "fps")
    assert not out.exists() and not WorkFolder(out).path.exists()


@pytest.mark.parametrize("where", ["existing file", "under a file"])
def test_demo_into_a_place_it_cannot_write_is_one_line(
    where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "notes.txt"
    mine.write_text("mine")
    target = mine if where == "existing file" else mine / "sub"
    argv = ["demo", "-o", str(target), "--size", "32", "--steps", "1", "--device", "cpu", "-q"]
    refused(main(argv), capsys)
    assert mine.read_text() == "mine"


def _out_of_memory(*args: object, **kwargs: object) -> None:
    raise RuntimeError(CPU_TEXT)


@pytest.mark.parametrize("door", ["transfer", "batch", "sweep"])
def test_a_cpu_allocation_failure_is_one_line_with_the_size_and_what_to_lower(
    door: str, photos: Path, pics: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    import nst.core.engine  # noqa: PLC0415

    monkeypatch.setattr(nst.core.engine, "optimize", _out_of_memory)
    out = tmp_path / ("o.png" if door == "transfer" else "out")
    argv = {"transfer": ["transfer", str(pics["photo"]), str(pics["style"])],
            "batch": ["batch", str(photos), str(pics["style"])],
            "sweep": ["sweep", "--content", str(pics["photo"]), "--style", str(pics["style"]),
                      "--param", "tv_weight=0,1"]}[door]
    code = main([*argv, "-o", str(out), *TINY])
    err = capsys.readouterr().err
    assert "Traceback" not in err and code == 1, f"status {code}: {err}"
    assert len(err.strip().splitlines()) == 1, err
    assert "115.0 GiB" in err and "lower --max-memory" in err
    made = [p for p in out.rglob("*.png")] if out.is_dir() else ([out] if out.exists() else [])
    assert not made
    assert not (out / LOCK_NAME).exists()


# ------------------------------------------------------------------ concurrency


def test_batch_into_a_locked_folder_is_refused_naming_the_holder(
    photos: Path, pics: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    hold_lock: Callable[[Path], int]
) -> None:
    out = tmp_path / "out"
    pid = hold_lock(out)
    refused(main(["batch", str(photos), str(pics["style"]), "-o", str(out), *TINY]), capsys, f"pid {pid}")
    assert not list(out.glob("*.png"))


@pytest.mark.parametrize("kind", ["gif", "folder"])
def test_video_into_a_locked_work_folder_is_refused_naming_the_holder(
    kind: str, frame_folder: Path, pics: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    hold_lock: Callable[[Path], int]
) -> None:
    out = tmp_path / ("out.gif" if kind == "gif" else "out-frames")
    pid = hold_lock(WorkFolder(out).path)
    argv = ["video", str(frame_folder), str(pics["style"]), "-o", str(out), *TINY]
    refused(main(argv), capsys, f"pid {pid}")
    assert not out.exists()


def test_sweep_into_a_locked_folder_is_refused_naming_the_holder(
    pics: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    hold_lock: Callable[[Path], int]
) -> None:
    out = tmp_path / "sweep"
    pid = hold_lock(out)
    argv = ["sweep", "--content", str(pics["photo"]), "--style", str(pics["style"]), "--param", "tv_weight=0",
            "-o", str(out), *TINY]
    refused(main(argv), capsys, f"pid {pid}")
    assert not (out / "images").exists()


def test_the_lock_of_a_dead_run_is_taken_over(
    photos: Path, pics: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    gone = {"pid": dead_pid(), "host": socket.gethostname(), "command": "nst batch killed",
            "started": "2024-01-01T00:00:00"}
    (out / LOCK_NAME).write_text(json.dumps(gone))
    worked(main(["batch", str(photos), str(pics["style"]), "-o", str(out), *TINY]), capsys)
    assert (out / "p0.png").exists() and (out / "p1.png").exists()
    assert not (out / LOCK_NAME).exists()


# -------------------------------------------------------------- foreign folders


def test_sweep_into_a_folder_of_user_files_needs_force(
    pics: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    argv = ["sweep", "--content", str(pics["photo"]), "--style", str(pics["style"]), "--param", "tv_weight=0",
            "-o", str(out), *TINY]
    refused(main(argv), capsys, "notes.txt", "--force")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    worked(main([*argv, "--force"]), capsys)
    assert (out / "notes.txt").read_text() == "my notes"
    assert (out / "index.html").exists()


def _study(path: Path, title: str, pics: dict[str, Path]) -> Path:
    path.write_text(textwrap.dedent(f"""
        title = {title!r}
        [inputs]
        content = [{str(pics['photo'])!r}]
        styles = [{str(pics['style'])!r}]
        [defaults]
        size = 32
        steps = 1
        [[sweep]]
        title = "TV"
        params = {{ tv_weight = [0] }}
    """))
    return path


def test_a_study_does_not_write_into_the_folder_of_another_study(
    pics: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    first = _study(tmp_path / "first.toml", "First", pics)
    second = _study(tmp_path / "second.toml", "Second", pics)
    worked(main(["study", str(first), "-o", str(out), "--device", "cpu", "-q"]), capsys)
    results = (out / "results.json").read_bytes()
    refused(main(["study", str(second), "-o", str(out), "--device", "cpu", "-q"]), capsys, "--force")
    assert (out / "results.json").read_bytes() == results


# -------------------------------------------------------------------- leftovers


def _leftover(folder: Path, name: str) -> Path:
    path = folder / f".{name}.nst-{dead_pid()}-{host_tag()}-abc123.tmp"
    path.write_bytes(b"half a picture")
    return path


def test_a_dead_writers_temporary_in_a_batch_folder_is_removed(
    photos: Path, pics: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    leftover = _leftover(out, "p0.png")
    worked(main(["batch", str(photos), str(pics["style"]), "-o", str(out), *TINY]), capsys)
    assert not leftover.exists()


def test_a_dead_writers_temporary_beside_a_transfer_output_is_removed(
    pics: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results" / "o.png"
    out.parent.mkdir()
    leftover = _leftover(out.parent, "o.png")
    worked(main(["transfer", str(pics["photo"]), str(pics["style"]), "-o", str(out), *TINY]), capsys)
    assert out.exists() and not leftover.exists()


def test_a_clip_corrupt_in_the_middle_keeps_its_frames_and_max_frames_stops_before_it(
    pics: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = tmp_path / "clip"
    clip.mkdir()
    frames = sliding_frames(count=4)
    for number, frame in enumerate(frames, start=1):
        frame.save(clip / f"{number:04d}.png")
    truncated_png(frames[2], clip / "0003.png")
    out = tmp_path / "out.gif"
    argv = ["video", str(clip), str(pics["style"]), "-o", str(out), *TINY]
    refused(main(argv), capsys, "frame 3", "--max-frames 2")
    work = WorkFolder(out)
    assert work.finished() == 2 and not out.exists()
    err = worked(main([*argv, "--max-frames", "2"]), capsys)
    assert "resumed 2 frame(s)" in err
    assert out.exists() and not work.path.exists()
