"""A batch on the real VGG19: each image follows the path it would follow alone
(tests/unit/test_batching.py checks the same on the tiny network, with BatchLBFGS's
per-image histories and per-image terms)."""

import torch

from checks import assert_batch_follows_alone
from nst import Config
from nst.core.features import build_extractor
from nst.files.images import load_image, resize_longest, to_tensor


def test_a_batch_of_two_transfers_matches_two_runs_alone(content_path, style_path):
    """In float64, for the reason tests/unit/test_batching.py gives: in float32 the
    batched convolutions of an AVX512 EPYC round differently in the last bit and 6
    L-BFGS steps amplify it to 2.5e-3 of the loss (263.84 against 264.50)."""
    content, style = (to_tensor(resize_longest(load_image(path), 48)).double()
                      for path in (content_path, style_path))
    other = torch.flip(content, dims=[3])  # a second content image of the same size
    config = Config(steps=6, scales=1, precision="fp32").resolved("cpu")
    extractor = build_extractor(list(config.style_layers) + list(config.content_layers)).double()
    assert_batch_follows_alone(extractor, config, content, other, style)
