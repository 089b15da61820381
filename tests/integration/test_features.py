import torch
import torch.nn.functional as F

from nst.core.features import (
    CAFFE,
    MARGIN,
    FeatureExtractor,
    build_extractor,
    load_caffe,
)


def test_caffe_weights_decode_to_vgg19_shapes():
    params = load_caffe()
    assert len(params) == 16
    assert params[0][0].shape == (64, 3, 3, 3)
    assert params[15][0].shape == (512, 512, 3, 3)
    # Real ImageNet weights, not noise: first-layer filters have a clear structure.
    assert 0.05 < params[0][0].abs().mean() < 1.0


def test_extractor_matches_caffe_convention_by_hand():
    """RGB [0, 1] in == Caffe's BGR 0-255 minus mean, features divided by 255; the image
    is extended by reflection (MARGIN px) before the network and every layer's features
    are cropped back to it; poolings keep an odd side's last row."""
    params = load_caffe()
    extractor = FeatureExtractor(params, CAFFE, ["conv_1", "relu_2", "conv_3"])
    image = torch.rand(1, 3, 21, 24)

    def conv(x, index):
        return F.conv2d(x, params[index][0], params[index][1], padding=1)

    def inside(x, margin):
        return x[..., margin:x.shape[-2] - margin, margin:x.shape[-1] - margin]

    got = extractor(image)
    bgr = image.flip(1) * 255 - torch.tensor(CAFFE.mean).view(1, 3, 1, 1)
    x = conv(F.pad(bgr, (MARGIN,) * 4, mode="reflect"), 0)
    assert torch.allclose(got["conv_1"], inside(x, MARGIN) / 255, atol=1e-4)
    x = F.relu(conv(F.relu(x), 1))
    assert torch.allclose(got["relu_2"], inside(x, MARGIN) / 255, atol=1e-4)
    x = conv(F.max_pool2d(x, 2, ceil_mode=True), 2)
    assert got["conv_3"].shape[-2:] == (11, 12)  # 21 rows pool to 11: the last one kept
    assert torch.allclose(got["conv_3"], inside(x, MARGIN // 2) / 255, atol=1e-3)


def test_extractor_runs_only_as_deep_as_needed():
    extractor = build_extractor(["conv_1-conv_5"])
    assert len(extractor.convs) == 5
    out = extractor(torch.rand(2, 3, 32, 32))
    assert set(out) == {f"conv_{i}" for i in range(1, 6)}
    assert out["conv_5"].shape == (2, 256, 8, 8)
    assert not any(p.requires_grad for p in extractor.parameters())


def test_average_pooling_changes_deep_features():
    image = torch.rand(1, 3, 32, 32)
    max_out = build_extractor(["conv_3"], pooling="max")(image)["conv_3"]
    avg_out = build_extractor(["conv_3"], pooling="avg")(image)["conv_3"]
    assert max_out.shape == avg_out.shape
    assert not torch.allclose(max_out, avg_out)
