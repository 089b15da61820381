"""The engine on the real VGG19: what only its weights show (a texture's style loss
falling by orders of magnitude, the calibrated content/style scale). The engine's
mechanics are checked on the tiny network in tests/unit/test_engine.py."""

import torch

from nst import Config
from nst.core.engine import Settings, build_objective, init_image, optimize
from nst.core.features import build_extractor
from nst.files.images import load_image, resize_longest, to_tensor


def _image(path, size):
    return to_tensor(resize_longest(load_image(path), size))


def test_texture_lowers_style_loss_by_orders_of_magnitude(style_path):
    style = _image(style_path, 64)
    config = Config(task="texture", content_layers=(), content_weight=0, steps=100).resolved("cpu")
    objective = build_objective(build_extractor(config.style_layers), config, None, [style])
    result = optimize(objective, init_image("noise", style, 1.0, seed=1), Settings.of(config), config.steps)
    first, last = result.history[0]["style"], result.losses["style"]
    assert last < first / 100
    assert float(result.image.min()) >= 0 and float(result.image.max()) <= 1


def test_content_weight_trades_content_against_style(content_path, style_path):
    """The calibrated scale: a larger content weight ends closer to the content."""
    content, style = _image(content_path, 48), _image(style_path, 48)
    distances = []
    for weight in (1.0, 1e5):
        config = Config(content_weight=weight, steps=60, init="noise", seed=0).resolved("cpu")
        extractor = build_extractor(config.content_layers + config.style_layers)
        objective = build_objective(extractor, config, content, [style])
        result = optimize(objective, init_image("noise", content, 1.0, 0), Settings.of(config), config.steps)
        distances.append(float(torch.mean((result.image - content) ** 2)))
    assert distances[1] < distances[0] / 2
