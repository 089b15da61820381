"""One clear line for each way a run can be refused or fail: layer names, huge
numbers, image headers and pixel limits, weights files, running out of memory."""

import argparse
import pickle

import pytest
import torch
from PIL import Image, ImageFile

from nst import Config, NstError, parse_layers
from nst.core.features import load_weights
from nst.errors import allocation_failure
from nst.files.images import load_image, probe_image


def _picture(path, size=(40, 20), orientation=None):
    image = Image.new("RGB", size, (200, 30, 30))
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    image.save(path, exif=exif.tobytes())
    return path


CPU_TEXT = ("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
            "you tried to allocate 123456789012 bytes. Error code 12 (Cannot allocate memory)")


CUDA_TEXT = "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.1 GiB total capacity; ...)"


ADVICE = ("lower --max-memory (large scales then run tile by tile, with a shorter L-BFGS history), "
          "--size or --style-size")


def _pickled(path):
    """A plain pickle holding more than tensors: torch refuses it with weights_only."""
    with open(path, "wb") as handle:
        pickle.dump({"features.0.weight": argparse.Namespace(note="not a tensor")}, handle)
    return path


@pytest.mark.parametrize(
    ("name", "fragment"),
    [("conv_17", "16 convolutions; valid names are conv_1..conv_16 (relu_1..relu_16, conv1_1..conv5_4)"),
     ("relu_0", "VGG19 has 16 convolutions; valid names are relu_1..relu_16"),
     ("conv6_1", "blocks are conv1_1..conv1_2, conv2_1..conv2_2, conv3_1..conv3_4"),
     ("conv5_5", "conv5_1..conv5_4; valid names are")],
)
def test_a_layer_past_the_end_of_vgg19_gets_the_range_not_a_guess(name, fragment):
    with pytest.raises(NstError) as error:
        parse_layers(name)
    message = str(error.value)
    assert message.startswith(f"unknown layer '{name}': ") and fragment in message
    assert "did you mean" not in message and "\n" not in message


@pytest.mark.parametrize(("name", "meant"),
                         [("conv_l", "conv_1"), ("rleu_3", "relu_3"), ("convl_2", "conv1_2")])
def test_a_typo_gets_the_layer_it_meant(name, meant):
    with pytest.raises(NstError, match=f"did you mean {meant}\\?"):
        parse_layers(name)


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [({"seed": 2**64}, "seed must be at most 18,446,744,073,709,551,615"),
     ({"size": 10**30}, "size must be at most 1,000,000"),
     ({"width": 10**5000}, "width must be at most 1,000,000, got an integer of about 5000 digits"),
     ({"scales": 10**9}, "scales must be at most 100"),
     ({"content_weight": 10**400}, "content-weight must be finite"),
     ({"style_layer_weights": (1, 1, 1, 1, 10**400)}, "style-layer-weights must be finite")],
)
def test_huge_numbers_are_refused_before_they_overflow(changes, fragment):
    with pytest.raises(NstError, match=fragment):
        Config(**changes)
    assert Config(seed=2**64 - 1, steps=10**12, history_size=10**12).seed == 2**64 - 1


@pytest.mark.parametrize(("suffix", "orientation", "size"),
                         [(".jpg", 6, (20, 40)), (".jpg", 8, (20, 40)), (".jpg", 3, (40, 20)),
                          (".png", 5, (20, 40)), (".webp", None, (40, 20))])
def test_probe_sees_the_picture_upright_as_load_does(tmp_path, suffix, orientation, size):
    path = _picture(tmp_path / f"photo{suffix}", orientation=orientation)
    assert probe_image(path, 10_000) == size
    assert load_image(path).size == size


def test_probe_reads_the_header_only(tmp_path, monkeypatch):
    path = _picture(tmp_path / "photo.png", (64, 48))

    def no_decoding(self):
        raise AssertionError("probe_image decoded pixels")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    assert probe_image(path, 10_000) == (64, 48)


def test_probe_refuses_like_load(tmp_path):
    (tmp_path / "words.jpg").write_text("not pixels")
    for target, fragment in [(tmp_path / "nope.png", "file not found"), (tmp_path, "found a folder"),
                             (tmp_path / "words.jpg", "not an image file")]:
        for reader in (probe_image, load_image):
            with pytest.raises(NstError, match=fragment):
                reader(target, 10_000)


def test_the_pixel_limit_is_named_not_called_corruption(tmp_path):
    path = _picture(tmp_path / "photo.png", (64, 48))
    for reader in (probe_image, load_image):
        with pytest.raises(NstError) as error:
            reader(path, 1000)
        message = str(error.value)
        assert "64x48 is 3,072 pixels, over the limit of 1,000 (raise it with --max-pixels)" in message
        assert "cannot decode" not in message


def test_pillows_own_limit_follows_ours(tmp_path, monkeypatch):
    # Pillow refuses above twice its limit; stand in for a >179 MP picture with a small limit.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    path = _picture(tmp_path / "big.png", (64, 64))
    assert load_image(path, 5000).size == (64, 64)  # our limit above Pillow's: Pillow must not refuse
    assert probe_image(path, 5000) == (64, 64)
    assert Image.MAX_IMAGE_PIXELS == 1000  # and Pillow's limit is back for everyone else
    with pytest.raises(NstError, match=r"over the limit of 1,500 pixels \(raise it with --max-pixels\)"):
        load_image(path, 1500)  # Pillow's refusal, at twice our limit: ours is the reason
    assert Image.MAX_IMAGE_PIXELS == 1000


def test_corruption_does_not_suggest_the_pixel_limit(tmp_path):
    whole = tmp_path / "whole.jpg"
    Image.effect_noise((200, 100), 60).convert("RGB").save(whole)
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert probe_image(truncated, 10**9) == (200, 100)  # the header is whole
    with pytest.raises(NstError) as error:
        load_image(truncated, 10**9)
    assert "truncated or corrupt" in str(error.value) and "--max-pixels" not in str(error.value)


def test_a_zipped_pickle_and_junk_are_one_line_too(tmp_path):
    torch.save({"features.0.weight": argparse.Namespace()}, tmp_path / "zipped.pth")
    (tmp_path / "junk.pt").write_bytes(bytes(range(256)) * 4)
    for name in ("zipped.pth", "junk.pt"):
        with pytest.raises(NstError) as error:
            load_weights(str(tmp_path / name))
        message = str(error.value)
        assert message.startswith(f"cannot read weights file {tmp_path / name}: ")
        assert "\n" not in message and "\x1b" not in message and "plain state dict" in message


def test_allocation_failures_become_one_line():
    cpu = allocation_failure(RuntimeError(CPU_TEXT))
    assert cpu == ("out of memory: a step needed 115.0 GiB more "
                   f"(torch tried to allocate 123,456,789,012 bytes); {ADVICE}")
    cuda = allocation_failure(torch.OutOfMemoryError(CUDA_TEXT))
    assert cuda == f"out of memory: a step needed 2.0 GiB more (torch tried to allocate 2.00 GiB); {ADVICE}"
    assert allocation_failure(MemoryError()) == (
        f"out of memory (the amount a step needed was not reported); {ADVICE}")
    assert allocation_failure(RuntimeError("MPS backend out of memory")).startswith("out of memory (")


def test_other_errors_are_not_allocation_failures():
    for error in (RuntimeError("mat1 and mat2 shapes cannot be multiplied"), ValueError(CPU_TEXT),
                  NstError("file not found: x.png"), KeyboardInterrupt()):
        assert allocation_failure(error) is None
