"""A decoder trained for seconds (nst's own train_decoder, the real VGG19 to relu3_1,
the shipped sample pictures at 64 px) and the Executor's fast path: at --strength 1
the result's Gram matrices at the decoder's level are nearer the style's than the
same decoder's reconstruction (--strength 0) is: the statistics move towards the
painting's. (Nearer than the photo itself needs a decoder trained for longer: after
seconds its reconstruction error is larger than the move.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image, ImageOps

from nst.config import Config
from nst.core.features import build_extractor
from nst.core.losses import gram_matrix
from nst.files.images import load_image, to_tensor
from nst.jobs.request import prepare
from nst.jobs.runner import Executor
from nst.jobs.train_decoder import train_decoder
from nst.jobs.train_options import TrainOptions
from nst.samples import STYLE_SAMPLES, sample_path

TRAIN = TrainOptions(steps=120, batch_size=4, crop=48, lr=3e-3, level="relu3_1", width=16, precision="fp32",
                     checkpoint_every=1000, eval_every=1000, style_weight=10.0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("fast_style")
    content, style = root / "content", root / "style"
    content.mkdir()
    style.mkdir()
    photo = Image.open(sample_path("tubingen")).convert("RGB")
    for index, box in enumerate([None, (0, 0, 400, 300), (200, 100, 600, 400), (100, 50, 500, 350)]):
        image = (photo if box is None else photo.crop(box)).resize((64, 48))
        image.save(content / f"c{index}.png")
        ImageOps.mirror(image).save(content / f"m{index}.png")
    for name in STYLE_SAMPLES:
        Image.open(sample_path(name)).convert("RGB").resize((64, 64)).save(style / f"{name}.png")
    decoder = root / "d.safetensors"
    train_decoder([content], [style], decoder, TRAIN)
    return decoder, content / "c0.png", style / f"{STYLE_SAMPLES[0]}.png"


def test_the_fast_result_moves_towards_the_styles_statistics(trained: tuple[Path, Path, Path]) -> None:
    decoder, content_path, style_path = trained
    encoder = build_extractor(["relu_5"], precision="fp32")
    with torch.no_grad():
        style_gram = gram_matrix(encoder(to_tensor(load_image(style_path)))["relu_5"])
    executor = Executor()
    distances = {}
    for strength in (0.0, 1.0):
        config = Config(method="fast", decoder=str(decoder), size=64, device="cpu", precision="fp32",
                        strength=strength)
        image = executor.run(prepare(config, content_path, [style_path])).result.image
        with torch.no_grad():
            distances[strength] = float((gram_matrix(encoder(image)["relu_5"]) - style_gram).pow(2).sum())
    # measured 14% lower (0.70 against 0.82) after 120 steps on the AMD EPYC; 5% leaves
    # room for another CPU's training path and stays far above rounding
    assert distances[1.0] < 0.95 * distances[0.0], distances
