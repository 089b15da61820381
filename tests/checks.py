"""Assertions that a unit test (on the tiny network of fakes.py) and an integration
test (on the real VGG19) both make."""

from __future__ import annotations

import pytest
import torch

from nst.config import Config
from nst.core.engine import Settings, build_objective, optimize
from nst.core.features import FeatureExtractor


def assert_batch_follows_alone(extractor: FeatureExtractor, config: Config, content: torch.Tensor,
                               other: torch.Tensor, style: torch.Tensor) -> None:
    """Two transfers in one batch end where each ends alone (in float64: see the
    tests), and each did optimize."""
    alone = []
    for image in (content, other):
        objective = build_objective(extractor, config, image, [style])
        alone.append(optimize(objective, image, Settings.of(config), config.steps))
    both = torch.cat([content, other])
    together = optimize(build_objective(extractor, config, both, [style]), both, Settings.of(config),
                        config.steps)
    assert together.image.shape[0] == 2
    for index in range(2):
        assert float((together.image[index] - alone[index].image[0]).abs().max()) < 1e-8
        expected = alone[index].losses["total"]
        assert together.image_losses[index]["total"] == pytest.approx(expected, rel=1e-8)
        assert expected < 0.98 * alone[index].history[0]["total"]  # it did optimize (4% in 6 steps)
    assert abs(alone[0].losses["total"] / alone[1].losses["total"] - 1) > 1e-3  # two different runs
    mean = (together.image_losses[0]["total"] + together.image_losses[1]["total"]) / 2
    assert together.losses["total"] == pytest.approx(mean, rel=1e-12)
