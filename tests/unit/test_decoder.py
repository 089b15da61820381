"""The fast path's decoder: architecture, any size, and its .safetensors file (core/decoder.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from nst.core.decoder import Decoder, crop_to, decoder_tensors, load_decoder, pad_to_multiple
from nst.core.decoder_spec import DecoderSpec
from nst.errors import NstError
from nst.jobs.decoder_state import write_decoder


@pytest.mark.parametrize(("level", "channels", "factor"), [("relu4_1", 512, 8), ("relu3_1", 256, 4)])
def test_the_decoder_mirrors_vgg19_from_its_level_with_no_transposed_convolution(
        level: str, channels: int, factor: int) -> None:
    decoder = Decoder(DecoderSpec(level, 8))
    assert decoder.spec.factor == factor
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in decoder.modules())
    assert decoder.convs[0].in_channels == channels and decoder.convs[-1].out_channels == 3
    assert sum(decoder.upsample_before) == factor.bit_length() - 1  # one per VGG pooling
    out = decoder(torch.randn(1, channels, 3, 5))
    assert out.shape == (1, 3, 3 * factor, 5 * factor)


def test_the_default_width_ships_well_under_20_mb() -> None:
    tensors, _ = decoder_tensors(Decoder(DecoderSpec()), half=True)
    assert sum(t.numel() * t.element_size() for t in tensors.values()) < 20 * 2**20


@pytest.mark.parametrize(("height", "width"), [(37, 50), (64, 64), (9, 23)])
def test_padding_to_a_multiple_and_cropping_back_keep_the_image(height: int, width: int) -> None:
    image = torch.rand(1, 3, height, width)
    padded, size = pad_to_multiple(image, 8)
    assert padded.shape[-2] % 8 == 0 and padded.shape[-1] % 8 == 0
    assert torch.equal(crop_to(padded, size), image)


def test_a_saved_decoder_loads_with_its_architecture_and_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    decoder = Decoder(DecoderSpec("relu3_1", 8))
    path = tmp_path / "d.safetensors"
    write_decoder(decoder, path, {"trained_steps": "3"})
    loaded = load_decoder(path)
    assert loaded.spec == decoder.spec
    features = torch.rand(1, 256, 4, 4)
    # fp16 storage: each weight within 2^-11 relative; the output within ~1e-3 of its range.
    expected, got = decoder(features), loaded(features)
    assert (got - expected).abs().max() <= 2e-3 * expected.abs().max()


def _one_line(path: Path) -> str:
    with pytest.raises(NstError) as refused:
        load_decoder(path)
    message = str(refused.value)
    assert "\n" not in message and str(path) in message
    return message


def test_a_missing_decoder_file_is_one_line(tmp_path: Path) -> None:
    assert "not found" in _one_line(tmp_path / "absent.safetensors")


def test_a_corrupt_decoder_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "d.safetensors"
    write_decoder(Decoder(DecoderSpec("relu3_1", 4)), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # cut short, as an interrupted download is
    assert "cannot read decoder file" in _one_line(path)
    path.write_bytes(b"\x00" * 64)
    assert "cannot read decoder file" in _one_line(path)


def test_a_file_of_other_tensors_or_another_architecture_is_refused(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(3)}, str(path))
    assert "not an nst decoder file" in _one_line(path)
    tensors, metadata = decoder_tensors(Decoder(DecoderSpec("relu3_1", 4)))
    save_file(tensors, str(path), metadata={**metadata, "width": "8"})  # the recorded width lies
    assert "shape" in _one_line(path)
    save_file(tensors, str(path), metadata={**metadata, "level": "relu_7"})
    assert "relu3_1 or relu4_1" in _one_line(path)


def test_a_stop_signal_waits_for_the_step_in_progress() -> None:
    """Ctrl-C inside deferred_stop only sets a flag; raise_if_asked, between steps,
    raises what the signal's own handler raises (KeyboardInterrupt for SIGINT)."""
    import os
    import signal

    from nst.jobs.decoder_state import deferred_stop

    finished = False
    with pytest.raises(KeyboardInterrupt), deferred_stop() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        finished = True  # the rest of the step runs
        stop.raise_if_asked()
    assert finished
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
