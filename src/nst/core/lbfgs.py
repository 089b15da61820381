"""L-BFGS for a batch of independent images: one curvature history per image.

torch.optim.LBFGS treats its parameters as one vector, so optimizing several
images in one tensor would mix their curvature pairs and step sizes: image 1's
step would depend on image 2. Here every dot product is taken per image (over
that image's pixels), so each image follows exactly the path it would follow
alone, while the network runs on the whole batch at once.

It is the iteration of torch.optim.LBFGS with max_iter=1 and no line search
(the engine's setting): the same two-loop recursion, the same first step of
min(1, 1/|g|_1) * lr and the same curvature test y.s > 1e-10. Nothing in it
reads a value back to the host, so on a GPU the iteration never waits for the
device (torch's version converts a few scalars to Python floats per step).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

CURVATURE_EPSILON = 1e-10  # pairs with y.s at or below this are not kept (as torch)


class BatchLBFGS:
    """Minimizes a closure's loss over `image` (B, ...), a leaf tensor that
    requires grad, where the loss is a sum of independent per-image losses."""

    def __init__(self, image: Tensor, lr: float = 1.0, history_size: int = 100) -> None:
        self.image, self.lr, self.history_size = image, lr, history_size
        # The remembered pairs live in one block, allocated at the first pair and
        # used as a ring: one allocation instead of two per step keeps the process's
        # heap from fragmenting round them (glibc kept up to 40% more memory so).
        self.pairs: Tensor | None = None  # (2, history_size, B, N): s_k, then y_k
        self.slots: list[int] = []  # rows of `pairs` in use, oldest first
        self.inverse_curvatures: list[Tensor] = []  # 1 / (y_k . s_k), each (B, 1); 0 if rejected
        self.initial_scale: Tensor | None = None  # H_0 = y.s / y.y of the newest kept pair
        self.previous_gradient: Tensor | None = None
        self.previous_step: Tensor | None = None

    def zero_grad(self, set_to_none: bool = True) -> None:
        if set_to_none:
            self.image.grad = None
        elif self.image.grad is not None:
            self.image.grad.zero_()

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor]) -> Tensor:
        """Evaluate the closure (which must call backward) and move the image."""
        with torch.enable_grad():
            loss = closure()
        batch = self.image.shape[0]
        assert self.image.grad is not None, "the closure must call backward()"
        gradient = self.image.grad.reshape(batch, -1).clone()
        if self.previous_gradient is None or self.previous_step is None:
            direction = -gradient
            step_size = self.lr * (1.0 / gradient.abs().sum(dim=1, keepdim=True)).clamp(max=1.0)
        else:
            self._remember(self.previous_step, gradient - self.previous_gradient)
            direction = self._direction(gradient)
            step_size = torch.full_like(gradient[:, :1], self.lr)
        # Only a descent direction is taken; an image without one stays put (as torch).
        descends = _dot(gradient, direction) < 0
        step = torch.where(descends, direction * step_size, torch.zeros_like(direction))
        self.image.add_(step.view_as(self.image))
        self.previous_gradient, self.previous_step = gradient, step
        return loss

    def _remember(self, step: Tensor, gradient_change: Tensor) -> None:
        curvature = _dot(gradient_change, step)
        # torch drops a rejected pair; deciding that would need the value on the host,
        # so the pair is kept with weight 0, which leaves both loops unchanged.
        kept = curvature > CURVATURE_EPSILON
        if self.pairs is None:
            self.pairs = step.new_empty((2, self.history_size, *step.shape))
        if len(self.slots) == self.history_size:  # forget the oldest pair: reuse its row
            slot = self.slots.pop(0)
            self.inverse_curvatures.pop(0)
        else:
            slot = len(self.slots)
        self.pairs[0, slot].copy_(step)
        self.pairs[1, slot].copy_(gradient_change)
        self.slots.append(slot)
        self.inverse_curvatures.append(torch.where(kept, 1.0 / curvature, torch.zeros_like(curvature)))
        scale = curvature / _dot(gradient_change, gradient_change)
        previous = self.initial_scale if self.initial_scale is not None else torch.ones_like(scale)
        self.initial_scale = torch.where(kept, scale, previous)

    def _direction(self, gradient: Tensor) -> Tensor:
        """The two-loop recursion, per image: -H g from the remembered pairs."""
        assert self.initial_scale is not None
        assert self.pairs is not None
        pairs = [(self.pairs[0, slot], self.pairs[1, slot], inverse)
                 for slot, inverse in zip(self.slots, self.inverse_curvatures, strict=True)]
        q = -gradient
        alphas = []
        for step, change, inverse in reversed(pairs):
            alpha = _dot(step, q) * inverse
            q.addcmul_(change, alpha, value=-1)  # in place: no image-sized temporaries
            alphas.append(alpha)
        r = q.mul_(self.initial_scale)
        for (step, change, inverse), alpha in zip(pairs, reversed(alphas), strict=True):
            beta = _dot(change, r) * inverse
            r.addcmul_(step, alpha - beta)
        return r


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Per-row dot products of (B, N) tensors as (B, 1), without a (B, N) temporary."""
    return torch.bmm(a.unsqueeze(1), b.unsqueeze(2)).view(-1, 1)
