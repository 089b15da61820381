"""The fast path's feature transforms against their closed forms (core/transform.py)."""

from __future__ import annotations

import pytest
import torch

from nst.core.transform import FeatureStats, adain, feature_stats, mean_std, stylize_features
from nst.errors import NstError

# The transforms compute in float64 and return the input's dtype (float32 here):
# a float32 rounding is 2^-24 relative; 1e-4 leaves room for the sums over positions.
RTOL = 1e-4


def _features(seed: int, shape: tuple[int, ...] = (2, 6, 9, 11), correlated: bool = True) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=generator)
    if correlated:  # channels that move together, unequal spreads and means: WCT's case
        mixing = torch.randn(shape[1], shape[1], generator=generator)
        x = torch.einsum("dc,bchw->bdhw", mixing, x) + torch.randn(1, shape[1], 1, 1, generator=generator) * 3
    return x


def test_adain_output_has_the_styles_channel_mean_and_std() -> None:
    content, style = _features(0), _features(1, (1, 6, 7, 5))
    style_mean, style_std = mean_std(style, eps=0)
    out = adain(content, style_mean, style_std, eps=0)
    mean, std = mean_std(out, eps=0)
    torch.testing.assert_close(mean, style_mean.expand_as(mean), rtol=RTOL, atol=RTOL)
    torch.testing.assert_close(std, style_std.expand_as(std), rtol=RTOL, atol=RTOL)


def test_stylize_adain_matches_adain() -> None:
    content, style = _features(2), _features(3, (1, 6, 8, 8))
    out = stylize_features(content, [feature_stats(style)], method="adain", eps=0)
    torch.testing.assert_close(out, adain(content, *mean_std(style, eps=0), eps=0), rtol=RTOL, atol=RTOL)


def test_wct_output_covariance_and_mean_are_the_styles() -> None:
    content, style = _features(4), _features(5, (1, 6, 10, 10))
    target = feature_stats(style)
    out = stylize_features(content, [target], method="wct", eps=1e-12)
    got = feature_stats(out)
    assert got.cov is not None and target.cov is not None
    torch.testing.assert_close(got.mean, target.mean.expand_as(got.mean), rtol=RTOL, atol=RTOL)
    scale = float(target.cov.abs().max())
    torch.testing.assert_close(got.cov, target.cov.expand_as(got.cov), rtol=RTOL, atol=RTOL * scale)


def test_wct_of_a_rank_deficient_style_stays_finite() -> None:
    """A style with a constant channel (zero variance) and more channels than positions
    (a singular covariance): eps keeps the whitening and the colouring finite."""
    style = _features(6, (1, 8, 2, 2))
    style[:, 3] = 0.5
    out = stylize_features(_features(7, (1, 8, 5, 5)), [feature_stats(style)], method="wct")
    assert torch.isfinite(out).all()


def test_strength_zero_returns_the_content_and_half_is_the_midpoint() -> None:
    content, style = _features(8), [feature_stats(_features(9, (1, 6, 6, 6)))]
    assert torch.equal(stylize_features(content, style, strength=0.0), content)
    full = stylize_features(content, style, strength=1.0)
    half = stylize_features(content, style, strength=0.5)
    torch.testing.assert_close(half, (full + content) / 2, rtol=RTOL, atol=RTOL)


@pytest.mark.parametrize("method", ["adain", "wct"])
def test_a_blend_of_identical_styles_is_that_style(method: str) -> None:
    content, style = _features(10), feature_stats(_features(11, (1, 6, 8, 8)))
    one = stylize_features(content, [style], method=method)
    weights = torch.tensor([0.2, 0.5, 0.3]).view(1, 3, 1, 1).expand(1, 3, 9, 11)
    three = stylize_features(content, [style, style, style], weights, method=method)
    torch.testing.assert_close(three, one, rtol=RTOL, atol=RTOL)


def test_a_blend_of_adain_styles_mixes_their_means_and_stds() -> None:
    """AdaIN is affine in the style's (mean, std): a blend's output has the weighted
    mean and the weighted std of the styles."""
    content = _features(12)
    a, b = feature_stats(_features(13, (1, 6, 8, 8))), feature_stats(_features(14, (1, 6, 8, 8)))
    weights = torch.tensor([0.25, 0.75]).view(1, 2, 1, 1).expand(1, 2, 9, 11)
    out = stylize_features(content, [a, b], weights, method="adain", eps=0)
    mean, std = mean_std(out, eps=0)
    torch.testing.assert_close(mean.flatten(1), (0.25 * a.mean + 0.75 * b.mean).float().expand(2, -1),
                               rtol=RTOL, atol=RTOL)
    torch.testing.assert_close(std.flatten(1), (0.25 * a.std + 0.75 * b.std).float().expand(2, -1),
                               rtol=RTOL, atol=RTOL)


def test_masks_give_each_region_its_styles_statistics() -> None:
    """Left half to style a, right half to style b, the rest nowhere: each half gets
    its style's mean and std over its own positions."""
    content = _features(15, (1, 6, 8, 10))
    a, b = feature_stats(_features(16, (1, 6, 8, 8))), feature_stats(_features(17, (1, 6, 8, 8)))
    masks = torch.zeros(1, 2, 8, 10)
    masks[:, 0, :, :5] = 1
    masks[:, 1, :, 5:] = 1
    out = stylize_features(content, [a, b], masks, method="adain", eps=0)
    for region, style in ((out[..., :5], a), (out[..., 5:], b)):
        mean, std = mean_std(region, eps=0)
        torch.testing.assert_close(mean.flatten(1), style.mean.float(), rtol=RTOL, atol=RTOL)
        torch.testing.assert_close(std.flatten(1), style.std.float(), rtol=RTOL, atol=RTOL)


def test_where_no_mask_covers_the_content_stays() -> None:
    content = _features(18, (1, 6, 8, 10))
    masks = torch.zeros(1, 1, 8, 10)
    masks[..., :3] = 1
    out = stylize_features(content, [feature_stats(_features(19, (1, 6, 4, 4)))], masks)
    assert torch.equal(out[..., 3:], content[..., 3:])
    assert not torch.allclose(out[..., :3], content[..., :3])


def test_weighted_statistics_count_only_the_region() -> None:
    x = _features(20, (1, 3, 4, 4))
    weights = torch.zeros(1, 1, 4, 4)
    weights[..., :2, :] = 2.0  # any positive scale: the weights are normalized
    region = feature_stats(x, weights)
    alone = feature_stats(x[..., :2, :])
    torch.testing.assert_close(region.mean, alone.mean)
    torch.testing.assert_close(region.cov, alone.cov)


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"strength": 1.5}, "strength must be between 0 and 1"),
    ({"method": "gram"}, "unknown feature transform 'gram'"),
    ({"region_weights": torch.ones(1, 2, 9, 11)}, "region weights of shape (1, 2, 9, 11) for 1 styles"),
])
def test_bad_arguments_are_refused_in_one_line(kwargs: dict[str, object], words: str) -> None:
    style: list[FeatureStats] = [feature_stats(_features(21, (1, 6, 4, 4)))]
    with pytest.raises(NstError) as refused:
        stylize_features(_features(22), style, **kwargs)  # type: ignore[arg-type]
    assert words in str(refused.value) and "\n" not in str(refused.value)
