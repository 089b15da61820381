"""Config refuses bad values itself, in one line (the command line's
refusals are in tests/integration/test_bad_input.py)."""

import pytest

from nst import Config, NstError


def test_config_rejects_bad_values_directly():
    with pytest.raises(NstError, match="steps must be at least 1"):
        Config(steps=0)
    with pytest.raises(NstError, match="tv-weight must be finite"):
        Config(tv_weight=float("nan"))
    with pytest.raises(NstError, match="style-layer-weights has 2 values but there are 5"):
        Config(style_layer_weights=(1.0, 2.0))
    with pytest.raises(NstError, match="unknown optimizer 'sgd'"):
        Config(optimizer="sgd")
