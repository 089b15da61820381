"""Several images optimized in one batch: each follows the path it would follow
alone (per-image L-BFGS histories, per-image losses)."""

import pytest
import torch

from checks import assert_batch_follows_alone
from nst import Config
from nst.core.engine import build_objective
from nst.core.features import build_extractor
from nst.core.lbfgs import BatchLBFGS
from nst.files.images import load_image, resize_longest, to_tensor

# The engine, not the weights, is what these tests check: the tiny network (fakes.py).
pytestmark = pytest.mark.usefixtures("tiny_network")


def _quadratic_problem():
    generator = torch.Generator().manual_seed(0)
    matrices = torch.randn(2, 30, 30, generator=generator)
    matrices = matrices @ matrices.transpose(1, 2) / 30 + 0.1 * torch.eye(30)
    offsets = torch.randn(2, 30, generator=generator)

    def loss(x: torch.Tensor, problems: list[int]) -> torch.Tensor:
        # Convex but not quadratic, so curvature pairs change from step to step.
        return sum(0.5 * x[i] @ matrices[p] @ x[i] - offsets[p] @ x[i] + 0.1 * (x[i] ** 4).sum()
                   for i, p in enumerate(problems))

    return loss


def _minimize(optimizer_for, loss, problems: list[int], steps: int = 40) -> torch.Tensor:
    x = torch.zeros(len(problems), 30, requires_grad=True)
    optimizer = optimizer_for(x)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        value = loss(x, problems)
        value.backward()
        return value

    for _ in range(steps):
        optimizer.step(closure)
    return x.detach()


def test_batch_lbfgs_follows_torch_lbfgs_and_keeps_images_apart():
    loss = _quadratic_problem()

    def torch_lbfgs(x):
        return torch.optim.LBFGS([x], lr=1, max_iter=1, history_size=5,
                                 tolerance_grad=0.0, tolerance_change=0.0)

    def ours(x):
        return BatchLBFGS(x, lr=1, history_size=5)

    alone = [_minimize(torch_lbfgs, loss, [problem]) for problem in (0, 1)]
    assert alone[0].abs().max() > 0.5  # it moved far from the start
    assert torch.allclose(_minimize(ours, loss, [0]), alone[0], atol=1e-5)
    together = _minimize(ours, loss, [0, 1])
    assert torch.allclose(together[0], alone[0][0], atol=1e-5)
    assert torch.allclose(together[1], alone[1][0], atol=1e-5)
    # With torch's single history the two images disturb each other on the way.
    early = _minimize(torch_lbfgs, loss, [1], steps=6)
    assert torch.allclose(_minimize(ours, loss, [0, 1], steps=6)[1], early[0], atol=1e-5)
    assert not torch.allclose(_minimize(torch_lbfgs, loss, [0, 1], steps=6)[1], early[0], atol=1e-2)


def _pair(content_path, style_path, size=48):
    content = to_tensor(resize_longest(load_image(content_path), size))
    style = to_tensor(resize_longest(load_image(style_path), size))
    return content, style


def test_a_batch_of_two_transfers_matches_two_runs_alone(content_path, style_path):
    """Each image of a batch follows the path it would follow alone. In float64, so
    that the claim is about batching, not rounding: batched convolutions round
    differently in the last bit, and L-BFGS amplifies that over its steps (in
    float32 to 2.5e-3 of the loss after 6 steps on an AVX512 EPYC, which picks other
    kernels for a batch than for one image). Float64's 1e-16 amplified as much stays
    below 1e-10: 1e-8 leaves room on every CPU, and images that touched each other
    would differ by far more (their losses differ by 10%)."""
    content, style = (image.double() for image in _pair(content_path, style_path))
    other = torch.flip(content, dims=[3])  # a second content image of the same size
    config = Config(steps=20, scales=1, precision="fp32").resolved("cpu")
    extractor = build_extractor(list(config.style_layers) + list(config.content_layers)).double()
    assert_batch_follows_alone(extractor, config, content, other, style)


def test_per_image_terms_sum_to_the_whole(content_path, style_path):
    content, style = _pair(content_path, style_path, 32)
    config = Config(tv_weight=1.0, precision="fp32").resolved("cpu")
    extractor = build_extractor(list(config.style_layers) + list(config.content_layers))
    both = torch.cat([content, content.flip(2)])
    objective = build_objective(extractor, config, both, [style])
    start = both.flip(3)
    terms = objective.per_image(start)
    assert terms["total"].shape == (2,)
    assert torch.allclose(objective(start)["total"], terms["total"].sum())
    single = build_objective(extractor, config, both[1:], [style]).per_image(start[1:])
    assert torch.allclose(terms["style"][1], single["style"][0], rtol=1e-4)
    assert torch.allclose(terms["content"][1], single["content"][0], rtol=1e-4)
