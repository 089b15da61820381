"""Layer names: canonical and block aliases, ranges, and clear refusals."""

import pytest

from nst import NstError, parse_layers
from nst.layers import LAYERS


def test_canonical_and_alias_names_agree():
    assert parse_layers("conv_1") == ("conv_1",)
    assert parse_layers("conv1_1") == ("conv_1",)
    assert parse_layers("relu4_2") == ("relu_10",)
    assert parse_layers("conv5_4") == ("conv_16",)
    assert len(LAYERS) == 64  # 16 convs x (conv, relu) x (flat, block) names


def test_ranges_lists_and_duplicates():
    assert parse_layers("conv_1-conv_5") == tuple(f"conv_{i}" for i in range(1, 6))
    assert parse_layers("relu1_1-relu2_1") == ("relu_1", "relu_2", "relu_3")
    assert parse_layers("conv_2, conv_1,conv_2") == ("conv_2", "conv_1")
    assert parse_layers(["conv_3", "relu_3"]) == ("conv_3", "relu_3")


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("conv_17", "unknown layer 'conv_17'"),
        ("relu6_1", "valid names are conv_1..conv_16"),
        ("conv_5-conv_1", "runs backwards"),
        ("conv_1-relu_3", "mixes conv and relu"),
    ],
)
def test_bad_layer_names_are_clear(spec, fragment):
    with pytest.raises(NstError, match=fragment):
        parse_layers(spec)


def test_typo_gets_a_suggestion():
    with pytest.raises(NstError, match="did you mean relu4_2"):
        parse_layers("rel4_2")
