"""The losses by hand: Gram matrices, content, style, TV and range penalty, and
their gradients."""

import torch

from nst.core.losses import content_loss, gram_matrix, range_penalty, style_loss, tv_loss


def test_gram_of_hand_built_feature_map():
    # Two channels over a 2x2 map: [[1, 2], [3, 4]] and all ones.
    features = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[1.0, 1.0], [1.0, 1.0]]]])
    expected = torch.tensor([[[30.0, 10.0], [10.0, 4.0]]]) / (2 * 2 * 2)
    assert torch.allclose(gram_matrix(features), expected)


def test_gram_batch_equals_stacked_singles():
    features = torch.randn(3, 4, 5, 6)
    stacked = torch.cat([gram_matrix(f[None]) for f in features])
    assert torch.allclose(gram_matrix(features), stacked, atol=1e-6)


def test_content_and_style_loss_values():
    x = torch.randn(1, 3, 4, 4)
    assert content_loss(x, x) == 0
    assert torch.isclose(content_loss(x, x + 2), torch.tensor(4.0))
    assert style_loss(x, gram_matrix(x)) == 0
    assert style_loss(x, torch.zeros(1, 3, 3)) > 0


def test_tv_of_constant_is_zero_and_of_stripes_known():
    assert tv_loss(torch.full((1, 3, 8, 8), 0.3)) == 0
    stripes = torch.zeros(1, 1, 2, 4)
    stripes[..., 1::2] = 1.0  # horizontal neighbours always differ by 1
    assert torch.isclose(tv_loss(stripes), torch.tensor(1.0))


def test_range_penalty_is_zero_inside_and_positive_outside():
    assert range_penalty(torch.rand(1, 3, 8, 8)) == 0
    outside = torch.full((1, 3, 2, 2), 1.5)
    assert torch.isclose(range_penalty(outside), torch.tensor(3 * 4 * 0.25 / 4))


def test_style_loss_gradient_float64():
    x = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    target = gram_matrix(torch.randn(1, 2, 3, 3, dtype=torch.float64))
    assert torch.autograd.gradcheck(lambda f: style_loss(f, target), (x,))
    assert torch.autograd.gradcheck(lambda f: tv_loss(f), (x,))


def test_style_loss_hand_written_gradient_matches_autograd():
    features = torch.randn(2, 4, 5, 3, dtype=torch.float64, requires_grad=True)
    target = gram_matrix(torch.randn(1, 4, 6, 6, dtype=torch.float64))
    assert torch.autograd.gradcheck(lambda f: style_loss(f, target), (features,))
    (fast,) = torch.autograd.grad(style_loss(features, target), features)
    (plain,) = torch.autograd.grad(torch.mean((gram_matrix(features) - target) ** 2), features)
    assert torch.allclose(fast, plain, atol=1e-12)
