"""The command line end to end: outputs, metadata, reproducibility, bad input."""

import json

import numpy as np
from PIL import Image

from nst.cli import app as cli
from nst.files.images import read_metadata

FAST = ["--size", "48", "--steps", "8", "--quiet", "--device", "cpu"]


def run_cli(*argv):
    return cli.main([str(a) for a in argv])


def test_transfer_end_to_end_writes_png_with_metadata(tmp_path, content_path, style_path, capsys):
    out = tmp_path / "out.png"
    code = run_cli("transfer", content_path, style_path, "-o", out, "--size", "64", "--steps", "20",
                   "--seed", "7", "--save-every", "10")
    assert code == 0
    image = Image.open(out)
    assert max(image.size) == 64 and image.mode == "RGB"
    meta = read_metadata(out)
    assert meta["config"]["seed"] == 7 and meta["config"]["steps"] == 20
    assert meta["config"]["weights"] == "caffe" and meta["config"]["content_weight"] == 10
    assert meta["final_losses"]["total"] > 0 and meta["run_time_s"] > 0
    assert (tmp_path / "out.step0010.png").exists()
    assert "wrote" in capsys.readouterr().err


def test_reconstruct_and_texture_commands(tmp_path, content_path, style_path):
    assert run_cli("reconstruct", content_path, "--layer", "conv_2", "-o", tmp_path / "r.png", *FAST) == 0
    assert read_metadata(tmp_path / "r.png")["config"]["content_layers"] == ["conv_2"]
    assert run_cli("texture", style_path, "--width", "40", "--height", "24",
                   "-o", tmp_path / "t.png", *FAST) == 0
    assert Image.open(tmp_path / "t.png").size == (40, 24)


def test_same_seed_same_output_other_seed_differs(tmp_path, content_path, style_path):
    outputs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        out = tmp_path / f"{name}.png"
        assert run_cli("transfer", content_path, style_path, "-o", out, "--init", "noise",
                       "--seed", seed, *FAST) == 0
        outputs.append(np.asarray(Image.open(out)))
    assert np.array_equal(outputs[0], outputs[1])
    assert not np.array_equal(outputs[0], outputs[2])


def test_jpeg_and_webp_get_a_json_sidecar(tmp_path, content_path, style_path):
    for name in ("out.jpg", "out.webp"):
        assert run_cli("transfer", content_path, style_path, "-o", tmp_path / name, *FAST) == 0
        sidecar = json.loads((tmp_path / f"{name}.json").read_text())
        assert sidecar["config"]["task"] == "transfer"


def test_two_styles_with_blend_and_gatys_preset(tmp_path, content_path, style_path, second_style_path):
    out = tmp_path / "blend.png"
    assert run_cli("transfer", content_path, style_path, second_style_path, "--style-blend", "0.7,0.3",
                   "--preset", "gatys", "--content-weight", "2", "-o", out, *FAST) == 0
    config = read_metadata(out)["config"]
    assert config["style_blend"] == [0.7, 0.3]
    assert config["content_layers"] == ["relu_10"] and config["content_weight"] == 2
    assert config["style_layers"] == ["relu_1", "relu_3", "relu_5", "relu_9", "relu_13"]


def test_init_from_image_path_and_blend(tmp_path, content_path, style_path, small_image):
    assert run_cli("transfer", content_path, style_path, "--init", small_image,
                   "-o", tmp_path / "i.png", *FAST) == 0
    assert run_cli("transfer", content_path, style_path, "--init", "blend", "--alpha", "0.3",
                   "-o", tmp_path / "b.png", *FAST) == 0
    assert read_metadata(tmp_path / "b.png")["config"]["alpha"] == 0.3


def test_exif_orientation_grayscale_and_rgba_inputs(tmp_path, style_path):
    # A 40x20 landscape stored with "rotate 90" EXIF orientation is 20x40 upright.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (40, 20), (200, 30, 30)).save(tmp_path / "rot.jpg", exif=exif)
    assert run_cli("transfer", tmp_path / "rot.jpg", style_path, "-o", tmp_path / "rot.png",
                   "--size", "40", "--steps", "3", "-q", "--device", "cpu") == 0
    assert Image.open(tmp_path / "rot.png").size == (20, 40)

    Image.new("L", (32, 32), 90).save(tmp_path / "gray.png")
    assert run_cli("transfer", tmp_path / "gray.png", style_path, "-o", tmp_path / "g.png", *FAST) == 0
    assert Image.open(tmp_path / "g.png").mode == "RGB"

    rgba = Image.new("RGBA", (32, 32), (10, 200, 10, 255))
    rgba.putpixel((0, 0), (0, 0, 0, 0))
    rgba.save(tmp_path / "alpha.png")
    assert run_cli("transfer", tmp_path / "alpha.png", style_path, "-o", tmp_path / "a.png",
                   "--size", "32", "--steps", "3", "-q", "--device", "cpu") == 0
    kept = Image.open(tmp_path / "a.png")
    assert kept.mode == "RGBA" and kept.getpixel((0, 0))[3] == 0 and kept.getpixel((20, 20))[3] == 255
    assert run_cli("transfer", tmp_path / "alpha.png", style_path, "-o", tmp_path / "a.jpg",
                   "--size", "32", "--steps", "3", "-q", "--device", "cpu") == 0
    assert Image.open(tmp_path / "a.jpg").mode == "RGB"
