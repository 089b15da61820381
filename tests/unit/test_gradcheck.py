"""Analytic against numerical gradients, in float64 on tiny inputs, for the two
losses whose backward goes through an eigendecomposition."""

from __future__ import annotations

import torch

from nst.core.losses import meancov_loss, psd_sqrt


def _spd(channels: int, seed: int) -> torch.Tensor:
    """A well-conditioned symmetric positive definite matrix (1, C, C): distinct
    eigenvalues keep eigh's gradient finite."""
    generator = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(channels, channels, generator=generator, dtype=torch.float64))
    values = torch.linspace(0.5, 2.0, channels, dtype=torch.float64)
    return (basis @ torch.diag(values) @ basis.T).unsqueeze(0)


def test_psd_sqrt_gradient_matches_finite_differences() -> None:
    matrix = _spd(4, 0).requires_grad_(True)

    def root(m: torch.Tensor) -> torch.Tensor:
        return psd_sqrt((m + m.transpose(-1, -2)) / 2)  # a symmetric input, as every caller gives

    assert torch.autograd.gradcheck(root, (matrix,), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_psd_sqrt_squares_back() -> None:
    matrix = _spd(4, 1)
    root = psd_sqrt(matrix)
    assert torch.allclose(root @ root, matrix, atol=1e-12)


def test_meancov_loss_gradient_matches_finite_differences() -> None:
    generator = torch.Generator().manual_seed(2)
    features = torch.randn(1, 3, 4, 5, generator=generator, dtype=torch.float64).requires_grad_(True)
    target_mean = torch.randn(1, 3, generator=generator, dtype=torch.float64)
    target_root = psd_sqrt(_spd(3, 3))
    assert torch.autograd.gradcheck(lambda f: meancov_loss(f, target_mean, target_root), (features,),
                                    eps=1e-6, atol=1e-7, rtol=1e-5)


def test_meancov_loss_gradient_with_a_mask() -> None:
    generator = torch.Generator().manual_seed(4)
    features = torch.randn(2, 3, 4, 4, generator=generator, dtype=torch.float64).requires_grad_(True)
    mask = torch.rand(1, 1, 4, 4, generator=generator, dtype=torch.float64)
    target_mean = torch.randn(1, 3, generator=generator, dtype=torch.float64)
    target_root = psd_sqrt(_spd(3, 5))
    assert torch.autograd.gradcheck(lambda f: meancov_loss(f, target_mean, target_root, mask), (features,),
                                    eps=1e-6, atol=1e-7, rtol=1e-5)
