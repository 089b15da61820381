"""--method fast and its options through every door that builds a Config (the CLI,
a study's TOML, the studio, the Python API's prepare): what means nothing without
an optimization is refused in one line naming the option; --strength and
--decoder are refused with gatys; a missing or corrupt decoder is one line."""

from __future__ import annotations

from pathlib import Path

import pytest

import nst.config as config_module
from fakes import picture
from fastkit import tiny_decoder
from nst.cli.options import build_parser, config_from_args, parse_arguments
from nst.config import Config, shipped_decoder_path
from nst.errors import NstError
from nst.jobs.request import prepare, sha256_file
from nst.jobs.video_request import VideoOptions, prepare_video
from nst.plans.study_config import read_study
from nst.serve.jobs import FastPath, build_config
from nst.serve.library import Library
from nst.tasks import task_config

REFUSED = [("--optimizer", "adam", "optimizer"), ("--steps", "5", "steps"), ("--lr", "0.5", "learning-rate"),
           ("--history-size", "7", "history-size"), ("--ema-decay", "0.5", "ema-decay"),
           ("--tv-weight", "1", "tv-weight"), ("--init", "noise", "init"), ("--scales", "3", "scales"),
           ("--start-size", "64", "start-size"), ("--style-loss", "meancov", "style-loss"),
           ("--content-weight", "3", "content-weight"), ("--style-weight", "3", "style-weight"),
           ("--content-layers", "relu4_2", "content-layers"), ("--style-layers", "relu1_1", "style-layers"),
           ("--style-layer-weights", "1,2,3,4,5", "style-layer-weights"), ("--seed", "3", "seed")]


def cli_config(*argv: str) -> Config:
    return config_from_args(parse_arguments(build_parser(), list(argv)))


def _one_line(error: pytest.ExceptionInfo[NstError], *words: str) -> None:
    message = str(error.value)
    assert "\n" not in message
    for word in words:
        assert word in message


@pytest.mark.parametrize(("option", "value", "name"), REFUSED)
def test_fast_refuses_every_option_of_the_optimization_on_the_command_line(option: str, value: str,
                                                                             name: str) -> None:
    with pytest.raises(NstError) as error:
        cli_config("transfer", "c.png", "s.png", "-o", "o.png", "--method", "fast", option, value)
    _one_line(error, "--method fast", name)


def test_fast_refuses_normalize_gradients_and_a_preset() -> None:
    for extra in (["--normalize-gradients"], ["--preset", "gatys"]):
        with pytest.raises(NstError) as error:
            cli_config("transfer", "c.png", "s.png", "-o", "o.png", "--method", "fast", *extra)
        _one_line(error, "--method fast")


def test_fast_keeps_what_acts_on_the_fast_path() -> None:
    config = cli_config("transfer", "c.png", "s.png", "t.png", "-o", "o.png", "--method", "fast",
                        "--strength", "0.4", "--decoder", "d.safetensors", "--precision", "fp32",
                        "--size", "64", "--style-size", "32", "--preserve-color", "luminance",
                        "--style-blend", "1,2")
    assert (config.method, config.strength, config.decoder) == ("fast", 0.4, "d.safetensors")
    assert (config.precision, config.size, config.style_size, config.preserve_color) == ("fp32", 64, 32,
                                                                                          "luminance")


@pytest.mark.parametrize("extra", [["--strength", "0.5"], ["--decoder", "d.safetensors"]])
def test_gatys_refuses_the_fast_options(extra: list[str]) -> None:
    with pytest.raises(NstError) as error:
        cli_config("transfer", "c.png", "s.png", "-o", "o.png", *extra)
    _one_line(error, extra[0][2:], "--method fast")


def test_init_fast_takes_the_decoder_and_strength() -> None:
    config = cli_config("transfer", "c.png", "s.png", "-o", "o.png", "--init", "fast",
                        "--decoder", "d.safetensors", "--strength", "0.5")
    assert (config.method, config.init, config.decoder, config.strength) == ("gatys", "fast", "d.safetensors",
                                                                              0.5)


def test_strength_is_checked() -> None:
    for value in (-0.1, 1.5, float("nan")):
        with pytest.raises(NstError) as error:
            Config(method="fast", strength=value)
        _one_line(error, "strength")


def test_fast_is_for_transfers_only() -> None:
    with pytest.raises(NstError) as error:
        task_config("texture", {"method": "fast"})
    _one_line(error, "method")
    with pytest.raises(NstError) as error:
        Config(task="reconstruct", method="fast")
    _one_line(error, "--method fast")
    assert task_config("texture", base=Config(method="fast")).method == "gatys"  # a shared base's method


def test_a_study_refuses_fast_with_optimization_settings(tmp_path: Path) -> None:
    path = tmp_path / "study.toml"
    path.write_text('[inputs]\ncontent = ["sample:tubingen"]\nstyles = ["sample:starry_night"]\n'
                    '[defaults]\nmethod = "fast"\nsteps = 20\n[style_transfer]\n')
    with pytest.raises(NstError) as error:
        [spec.config for sweep in read_study(path).sweeps for spec in sweep.runs()]
    _one_line(error, "--method fast", "steps")


def test_the_studio_refuses_fast_without_a_decoder(tmp_path: Path) -> None:
    for options in ({"method": "fast"}, {"init": "fast"}):
        with pytest.raises(NstError) as error:
            build_config(Library(tmp_path / "library"), "transfer", options, "auto",
                         FastPath(reason="no decoder here"))
        _one_line(error, "--method fast", "studio", "no decoder here")


def _images(tmp_path: Path) -> tuple[Path, Path]:
    return picture(tmp_path / "c.png", 0, (37, 23)), picture(tmp_path / "s.png", 1)


def test_a_missing_shipped_decoder_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "decoders" / "decoder.safetensors"  # a broken install
    monkeypatch.setattr(config_module, "shipped_decoder_path", lambda: missing)
    content, style = _images(tmp_path)
    with pytest.raises(NstError) as error:
        prepare(Config(method="fast", device="cpu", size=32), content, [style])
    assert str(error.value) == (f"the decoder nst ships is missing ({missing}): reinstall nst, or give "
                                "--decoder FILE (nst train-decoder makes one)")


def test_the_shipped_decoder_is_in_the_package_and_loads() -> None:
    from nst.core.decoder import load_decoder

    path = shipped_decoder_path()
    assert path.is_file() and path.stat().st_size <= 20 * 2**20  # the limit: 20 MB
    decoder = load_decoder(path)  # safetensors: no pickle
    assert decoder.spec.level_name == "relu4_1" and decoder.spec.factor == 8


NOT_A_DECODER = b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": 1}    "  # a header without nst's metadata


@pytest.mark.parametrize("body", [b"", b"not a decoder at all", NOT_A_DECODER])
def test_a_corrupt_or_missing_decoder_is_one_line(tmp_path: Path, body: bytes) -> None:
    content, style = _images(tmp_path)
    corrupt = tmp_path / "bad.safetensors"
    corrupt.write_bytes(body)
    for path in (corrupt, tmp_path / "missing.safetensors"):
        with pytest.raises(NstError) as error:
            prepare(Config(method="fast", device="cpu", size=32, decoder=str(path)), content, [style])
        _one_line(error, str(path))


def test_a_size_over_the_memory_budget_names_the_largest_that_fits(tmp_path: Path) -> None:
    content, style = _images(tmp_path)
    decoder = tiny_decoder(tmp_path / "d.safetensors")
    config = Config(method="fast", device="cpu", size=4000, decoder=str(decoder), max_memory=700 << 20,
                    precision="fp32")
    with pytest.raises(NstError) as error:
        prepare(config, content, [style], output=tmp_path / "o.png")
    _one_line(error, "--method fast", "the largest --size that fits is")
    largest = int(str(error.value).rsplit(" ", 1)[1])
    assert 0 < largest < 4000
    prepare(config.replace(size=largest), content, [style])  # and that size is accepted
    assert not (tmp_path / "o.png").exists()


def test_a_fast_request_for_a_cluster_carries_its_decoder_by_hash(tmp_path: Path) -> None:
    content, style = _images(tmp_path)
    decoder = tiny_decoder(tmp_path / "d.safetensors")
    request = prepare(Config(method="fast", decoder=str(decoder), size=32), content, [style], run_on="cpu")
    assert request.decoder is not None and request.decoder in request.inputs  # shipped as a blob
    assert ("decoder", sha256_file(decoder)) in [(r.role, r.sha256) for r in request.input_records()]
    with pytest.raises(NstError) as error:
        prepare_video(Config(method="fast", decoder=str(decoder)), VideoOptions(frame_steps=2), content,
                      [style], tmp_path / "o.mp4")
    _one_line(error, "--method fast", "--frame-steps")
