"""The fast path: encode, transform, decode, in one forward pass each (no optimization).

    image = decoder(transform(VGG19(content) at the decoder's level, styles' statistics))

Pure tensors in and out (the engine's rules: no files, no printing). Any size and
aspect: the content is extended by reflection to a multiple of the decoder's
factor (8 at relu4_1) and the output cropped back; the styles keep their own size
and aspect (their statistics do not depend on either).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from nst.core.decoder import Decoder, crop_to, pad_to_multiple
from nst.core.features import FeatureExtractor
from nst.core.transform import FeatureStats, feature_stats, stylize_features
from nst.errors import NstError


def style_statistics(encoder: FeatureExtractor, style: Tensor, level: str,
                     covariance: bool = True) -> FeatureStats:
    """A style image (1, 3, H, W) in [0, 1] -> its features' statistics at `level`
    (with the covariance WCT needs unless `covariance` is False: AdaIN's only)."""
    with torch.no_grad():
        return feature_stats(encoder(style)[level], covariance=covariance)


def fast_stylize(
    encoder: FeatureExtractor,
    decoder: Decoder,
    content: Tensor,
    styles: Sequence[Tensor | FeatureStats],
    strength: float = 1.0,
    masks: Tensor | None = None,
    blend: Sequence[float] | None = None,
    method: str = "adain",
) -> Tensor:
    """content (B, 3, H, W) RGB in [0, 1] painted with the styles -> (B, 3, H, W) in [0, 1]
    (a batch: the frames of a video, the images of a batch of one size; each image
    gets the styles' statistics on its own).

    styles: style images (1, 3, h, w) in [0, 1], any size, or their statistics
        (style_statistics: computed once, reused for every frame of a video).
    strength in [0, 1]: 0 gives decode(encode(content)), 1 the full style.
    masks (1 or B, S, H, W) in [0, 1] at the content's resolution: where each style
        paints (pixels no mask covers keep the content); resized to the features.
    blend: one weight per style, >= 0 (default: equal); not with masks.
    method: the feature transform, 'adain' or 'wct' (see core/transform.py).
    The encoder must compute the decoder's level (encoder.layers); the decoder runs
    in the encoder's precision (bf16 or float32).
    """
    level = decoder.spec.level
    if level not in encoder.layers:
        raise NstError(f"the encoder does not compute {decoder.spec.level_name}, "
                       "the layer the decoder decodes")
    stats = [s if isinstance(s, FeatureStats) else style_statistics(encoder, s, level, method == "wct")
             for s in styles]
    padded, size = pad_to_multiple(content, decoder.spec.factor)
    with torch.no_grad():
        features = encoder(padded)[level]
        weights = _region_weights(features, len(stats), masks, blend, decoder.spec.factor)
        transformed = stylize_features(features, stats, weights, strength, method)
        # The decoder computes in the encoder's arithmetic: bf16 autocast took it from
        # 0.30 s to 0.10 s at 512 px on one core of the AVX512-BF16 EPYC.
        with torch.autocast(content.device.type, dtype=torch.bfloat16, enabled=encoder.precision == "bf16"):
            image = decoder(transformed.to(features.dtype)).float()
    return crop_to(image, size).clamp(0, 1)


def _region_weights(features: Tensor, styles: int, masks: Tensor | None, blend: Sequence[float] | None,
                    factor: int) -> Tensor | None:
    """The transform's (1, S, h, w) weights: masks extended as the image was and
    averaged over the factor x factor pixels each feature position stands for; or
    a blend's constant weights; None for equal weights."""
    if masks is not None and blend is not None:
        raise NstError("give masks or blend weights, not both")
    h, w = features.shape[-2:]
    if masks is not None:
        if masks.shape[1] != styles:
            raise NstError(f"{masks.shape[1]} masks for {styles} styles")
        padded, _ = pad_to_multiple(masks.float().to(features.device), factor)
        pooled = F.avg_pool2d(padded, factor)
        if tuple(pooled.shape[-2:]) != (h, w):
            raise NstError(f"masks of {masks.shape[-1]}x{masks.shape[-2]} do not match the content image")
        return pooled
    if blend is None:
        return None
    if len(blend) != styles or any(weight < 0 for weight in blend) or sum(blend) <= 0:
        raise NstError(f"blend needs {styles} weights of at least 0, not all 0; got {list(blend)}")
    weights = torch.tensor(list(blend), dtype=torch.float32, device=features.device)
    return weights.view(1, styles, 1, 1).expand(1, styles, h, w)
