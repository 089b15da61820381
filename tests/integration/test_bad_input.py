"""Every bad input: a one-line error naming the problem, exit 2, no traceback, no output file."""

import tempfile

import pytest
from PIL import Image

from nst.cli import app as cli

FAST = ["--size", "32", "--steps", "2", "--quiet", "--device", "cpu"]


def run_cli(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    return code, err


def assert_one_line_error(code, err, *fragments):
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


@pytest.fixture
def truncated(tmp_path, content_path):
    data = content_path.read_bytes()
    path = tmp_path / "truncated.jpg"
    path.write_bytes(data[: len(data) // 3])
    return path


@pytest.fixture
def not_an_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("these are words, not pixels")
    return path


@pytest.mark.parametrize(
    ("make_args", "fragments"),
    [
        (lambda p, c, s: [p / "missing.jpg", s], ["file not found", "missing.jpg"]),
        (lambda p, c, s: [p, s], ["found a folder"]),
        (lambda p, c, s: [c, p / "notes.jpg"], ["not an image file", "notes.jpg"]),
        (lambda p, c, s: [p / "truncated.jpg", s], ["truncated or corrupt", "truncated.jpg"]),
        (lambda p, c, s: [c, s, "--max-pixels", "1000"], ["over the limit of 1,000", "--max-pixels"]),
        (lambda p, c, s: [c, s, "--style-layers", "conv_99"], ["unknown layer 'conv_99'"]),
        (lambda p, c, s: [c, s, "--content-weight", "-1"], ["content-weight must not be negative"]),
        (lambda p, c, s: [c, s, "--style-weight", "lots"], ["--style-weight", "expected a number"]),
        (lambda p, c, s: [c, s, "--size", "0"], ["size must be at least 1"]),
        (lambda p, c, s: [c, s, "--style-blend", "1,2"], ["2 weights for 1 style images"]),
        (lambda p, c, s: [c, s, "--init", p / "nope.png"], ["file not found", "nope.png"]),
        (lambda p, c, s: [c, s, "--device", "tpu"], ["device 'tpu'"]),
        (lambda p, c, s: [c, s, "--weights", p / "nope.pth"], ["weights file not found"]),
        (lambda p, c, s: [c, s, "--alpha", "2"], ["alpha must be between 0 and 1"]),
    ],
)
def test_bad_transfer_input(tmp_path, capsys, content_path, style_path, truncated, not_an_image,
                            make_args, fragments):
    out = tmp_path / "out.png"
    code, err = run_cli(capsys, "transfer", *FAST, "-o", out,
                        *make_args(tmp_path, content_path, style_path))
    assert_one_line_error(code, err, *fragments)
    assert not out.exists()


def test_output_folder_missing_or_not_a_folder(tmp_path, capsys, content_path, style_path):
    code, err = run_cli(capsys, "transfer", content_path, style_path, "-o", tmp_path / "no" / "o.png",
                        *FAST)
    assert_one_line_error(code, err, "output folder does not exist")
    (tmp_path / "file").write_text("x")
    code, err = run_cli(capsys, "transfer", content_path, style_path, "-o", tmp_path / "file" / "o.png",
                        *FAST)
    assert_one_line_error(code, err, "not a folder")
    code, err = run_cli(capsys, "transfer", content_path, style_path, "-o", tmp_path / "o.gif", *FAST)
    assert_one_line_error(code, err, "unknown extension '.gif'")


def test_output_folder_not_writable(tmp_path, capsys, content_path, style_path, monkeypatch):
    # Root ignores permission bits, so simulate what a read-only folder does.
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", refuse)
    code, err = run_cli(capsys, "transfer", content_path, style_path, "-o", tmp_path / "o.png", *FAST)
    assert_one_line_error(code, err, "not writable", str(tmp_path))


def test_unknown_layer_for_reconstruct_lists_valid_names(tmp_path, capsys, content_path):
    code, err = run_cli(capsys, "reconstruct", content_path, "--layer", "conv_0", "-o",
                        tmp_path / "r.png", *FAST)
    assert_one_line_error(code, err, "valid names are conv_1..conv_16")


def test_usage_errors_are_one_line(capsys):
    code, err = run_cli(capsys, "transfer")
    assert_one_line_error(code, err, "required")


def test_ctrl_c_leaves_no_output(tmp_path, capsys, content_path, style_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("nst.jobs.runner.execute", interrupted)
    out = tmp_path / "out.png"
    code = cli.main(["transfer", str(content_path), str(style_path), "-o", str(out), *FAST])
    assert code == 130 and not out.exists()
    assert "interrupted" in capsys.readouterr().err


def test_ctrl_c_while_saving_leaves_no_partial_file(tmp_path, content_path, style_path, monkeypatch):
    def half_written(self, fp, *args, **kwargs):
        with open(fp, "wb") as handle:
            handle.write(b"\x89PNG partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", half_written)
    out = tmp_path / "out.png"
    code = cli.main(["transfer", str(content_path), str(style_path), "-o", str(out), *FAST])
    assert code == 130
    assert list(tmp_path.iterdir()) == []


def test_divergence_exits_1_without_output(tmp_path, capsys, content_path, style_path, monkeypatch):
    from nst.core import engine

    real_optimize = engine.optimize

    def diverging(objective, start, *args, **kwargs):
        objective.extra_terms["boom"] = lambda image: image.sum() * float("inf")
        return real_optimize(objective, start, *args, **kwargs)

    monkeypatch.setattr(engine, "optimize", diverging)
    out = tmp_path / "out.png"
    code = cli.main(["transfer", str(content_path), str(style_path), "-o", str(out), *FAST])
    err = capsys.readouterr().err
    assert code == 1 and "diverged" in err and not out.exists()
