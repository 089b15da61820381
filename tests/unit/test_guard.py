"""The unit suite's guard (conftest.py): no unit test can load the real VGG19."""

import pytest

from nst.core.features import build_extractor, load_weights


def test_the_real_weights_are_refused_in_unit_tests() -> None:
    for source in ("caffe", "torchvision"):
        with pytest.raises(AssertionError, match="tried to load the real VGG19"):
            load_weights(source)
    with pytest.raises(AssertionError, match="tiny_network"):
        build_extractor(["conv_1"])


def test_the_tiny_network_stands_in(tiny_network: None) -> None:
    extractor = build_extractor(["conv_1", "relu_10"])
    assert extractor.depth == 10 and extractor.convs[0].out_channels == 8
