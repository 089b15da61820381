"""fast_stylize (core/fast.py) with a random VGG19-shaped network as far as relu3_1
and an untrained decoder: sizes, strength 0, masks, blends and refusals."""

from __future__ import annotations

import pytest
import torch

from nst.core.decoder import Decoder, crop_to, pad_to_multiple
from nst.core.decoder_spec import DecoderSpec
from nst.core.fast import fast_stylize, style_statistics
from nst.core.features import FeatureExtractor, InputConvention
from nst.errors import NstError
from nst.layers import CONV_CHANNELS

PLAIN = InputConvention(bgr=False, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), value_range=1.0,
                        feature_scale=1.0)


def _encoder() -> FeatureExtractor:
    generator = torch.Generator().manual_seed(0)
    params, inputs = [], 3
    for outputs in CONV_CHANNELS[:5]:
        params.append((torch.randn(outputs, inputs, 3, 3, generator=generator) / (3 * inputs ** 0.5),
                       torch.zeros(outputs)))
        inputs = outputs
    return FeatureExtractor(params, PLAIN, ["relu3_1"])


@pytest.fixture(scope="module")
def nets() -> tuple[FeatureExtractor, Decoder]:
    torch.manual_seed(0)
    return _encoder(), Decoder(DecoderSpec("relu3_1", 4)).eval()


def test_any_size_comes_back_at_its_size_in_range(nets: tuple[FeatureExtractor, Decoder]) -> None:
    encoder, decoder = nets
    content, style = torch.rand(1, 3, 23, 37), torch.rand(1, 3, 40, 17)  # neither a multiple of 4
    out = fast_stylize(encoder, decoder, content, [style])
    assert out.shape == content.shape and out.min() >= 0 and out.max() <= 1


def test_strength_zero_is_the_reconstruction(nets: tuple[FeatureExtractor, Decoder]) -> None:
    encoder, decoder = nets
    content = torch.rand(1, 3, 21, 30)
    padded, size = pad_to_multiple(content, 4)
    with torch.no_grad():
        expected = crop_to(decoder(encoder(padded)["relu_5"]), size).clamp(0, 1)
    assert torch.equal(fast_stylize(encoder, decoder, content, [torch.rand(1, 3, 16, 16)], strength=0.0),
                       expected)


def test_precomputed_statistics_equal_images(nets: tuple[FeatureExtractor, Decoder]) -> None:
    encoder, decoder = nets
    content, style = torch.rand(1, 3, 24, 24), torch.rand(1, 3, 32, 20)
    stats = style_statistics(encoder, style, "relu_5")
    assert torch.equal(fast_stylize(encoder, decoder, content, [stats]),
                       fast_stylize(encoder, decoder, content, [style]))


def test_a_mask_that_covers_nothing_keeps_the_reconstruction(nets: tuple[FeatureExtractor, Decoder]) -> None:
    encoder, decoder = nets
    content, style = torch.rand(1, 3, 24, 28), torch.rand(1, 3, 16, 16)
    none = fast_stylize(encoder, decoder, content, [style], masks=torch.zeros(1, 1, 24, 28))
    assert torch.equal(none, fast_stylize(encoder, decoder, content, [style], strength=0.0))
    full = fast_stylize(encoder, decoder, content, [style], masks=torch.ones(1, 1, 24, 28))
    torch.testing.assert_close(full, fast_stylize(encoder, decoder, content, [style]))


def test_a_blend_weighted_to_one_style_is_that_style(nets: tuple[FeatureExtractor, Decoder]) -> None:
    encoder, decoder = nets
    content, a, b = torch.rand(1, 3, 24, 24), torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16) * 0.3
    torch.testing.assert_close(fast_stylize(encoder, decoder, content, [a, b], blend=[1.0, 0.0]),
                               fast_stylize(encoder, decoder, content, [a]))


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"blend": [1.0]}, "blend needs 2 weights"),
    ({"blend": [0.0, 0.0]}, "not all 0"),
    ({"masks": torch.ones(1, 3, 24, 24)}, "3 masks for 2 styles"),
    ({"masks": torch.ones(1, 2, 12, 24)}, "do not match the content image"),
    ({"masks": torch.ones(1, 2, 24, 24), "blend": [1.0, 1.0]}, "not both"),
])
def test_refusals_are_one_line(nets: tuple[FeatureExtractor, Decoder], kwargs: dict[str, object],
                               words: str) -> None:
    encoder, decoder = nets
    with pytest.raises(NstError) as refused:
        fast_stylize(encoder, decoder, torch.rand(1, 3, 24, 24), [torch.rand(1, 3, 8, 8)] * 2,
                     **kwargs)  # type: ignore[arg-type]
    assert words in str(refused.value) and "\n" not in str(refused.value)


def test_a_batch_is_each_image_alone(nets: tuple[FeatureExtractor, Decoder]) -> None:
    """Each image of a batch is transformed with its own statistics. (Batched and single
    float32 convolutions may sum in another order: ~1e-6, far below an 8-bit level.)"""
    encoder, decoder = nets
    content, style = torch.rand(2, 3, 20, 28), torch.rand(1, 3, 16, 16)
    both = fast_stylize(encoder, decoder, content, [style])
    for index in range(2):
        alone = fast_stylize(encoder, decoder, content[index:index + 1], [style])
        torch.testing.assert_close(both[index:index + 1], alone, rtol=0, atol=1e-4)
