"""Unit tests never load the real VGG19: it is what makes tests slow, and a claim
that needs it belongs in tests/integration. Every unit test runs with the real
weight sources refused (the tiny network of fakes.py replaces them where a test
asks for `tiny_network`)."""

from __future__ import annotations

import pytest
import torch

from nst.core import features

REFUSAL = ("a unit test tried to load the real VGG19 weights: use the tiny_network fixture "
           "(tests/fakes.py) or move the test to tests/integration")


def _refuse(*args: object, **kwargs: object) -> None:
    raise AssertionError(REFUSAL)


@pytest.fixture(autouse=True)
def no_real_weights(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    # Weights an integration test of the same session decoded are not reused either.
    monkeypatch.setattr(features, "_WEIGHT_CACHE", {})
    monkeypatch.setattr(features, "caffe_weights_path", _refuse)
    # torchvision's weights come from torch.hub's cache: an empty one here, and no download.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch-home")))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _refuse)
