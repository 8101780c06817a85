"""BYOL: predict a slowly moving target network's embedding of the other view.

Grill et al., "Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning" (2020).
Two networks see the two views. The online network (encoder, projector, then a predictor
MLP) gives predictions Q_a, Q_b: (N, D); the target network (encoder and projector only) gives
Z'_a, Z'_b: (N, D). The loss asks each prediction to point the way of the target's embedding
of the other view, summed over both directions and averaged over the batch:

    L = (1/N) Σ_n [ (2 - 2 cos(q_a,n, z'_b,n)) + (2 - 2 cos(q_b,n, z'_a,n)) ]

2 - 2 cos(q, z') = |q/|q| - z'/|z'||², the squared distance of the two unit vectors.
No gradient reaches the target (the stop-gradient): its weights θ' follow the online ones θ
as an exponential moving average instead, θ' <- τ θ' + (1 - τ) θ, after every step, with τ
rising from τ_base to 1 on a cosine schedule. Nothing in the loss forbids collapse; the
predictor and the slow target are what avoid it in practice.

Defaults from the paper (Section 3.3, implementation details): τ_base = 0.996,
τ = 1 - (1 - τ_base)(cos(πk/K) + 1)/2 at step k of K; the projector and the predictor are the
same MLP, Linear(4096), batch norm, ReLU, Linear(256), on a ResNet-50 (2048 features).
For tinybt's small encoder the predictor keeps that shape with the projector's sizes: it maps
the projector's D-dimensional output through a hidden layer as wide as the projector's (512
with the default 512-512-512 projector) back to D, so `predictor(512, 512)`.
"""

import math

from tinybt import nn
from tinybt.backend import get_array_module
from tinybt.tensor import Function

TAU_BASE = 0.996  # the paper's starting EMA rate


def _unit_rows(x):
    """(x / |x| per row, |x| per row (N, 1)) for x: (N, D)."""
    norms = get_array_module(x).sqrt((x**2).sum(axis=1, keepdims=True))
    return x / norms, norms


class BYOLLoss(Function):
    """L(Q_a, Q_b, Z'_a, Z'_b), all (N, D) -> scalar, the gradient derived by hand.

    The targets Z'_a, Z'_b are constants (the stop-gradient): backward returns None for them,
    and refuses to run if they require a gradient. Pass them detached (`byol_loss` does).

    Backward, one direction, for one row q with target z' (unit vectors q̂ = q/|q|, ẑ = z'/|z'|):
        cos = q̂ · ẑ,  dq̂/dq = (I - q̂ q̂ᵀ) / |q|  =>  d cos/dq = (ẑ - q̂ cos) / |q|
        dL/dq = -2 (ẑ - q̂ cos) / (N |q|)                       (N, D), row by row
    Q_a is paired with Z'_b and Q_b with Z'_a.
    """

    def forward(self, q_a, q_b, target_a, target_b):
        shapes = {x.shape for x in (q_a, q_b, target_a, target_b)}
        if len(shapes) != 1 or q_a.ndim != 2:
            raise ValueError(
                "BYOL's predictions and targets must all be (N, D), got "
                f"{[x.shape for x in (q_a, q_b, target_a, target_b)]}"
            )
        # (unit prediction, its norm, unit target, cosine) for each direction
        self.directions = []
        total = 0.0
        for q, target in ((q_a, target_b), (q_b, target_a)):
            q_unit, q_norms = _unit_rows(q)
            target_unit, _ = _unit_rows(target)
            cosine = (q_unit * target_unit).sum(axis=1, keepdims=True)  # (N, 1)
            self.directions.append((q_unit, q_norms, target_unit, cosine))
            total = total + (2 - 2 * cosine).mean()
        return total

    def backward(self, grad):
        if any(self.needs_grad[2:]):
            raise RuntimeError(
                "BYOL's targets must get no gradient (the stop-gradient): pass them detached, "
                "as byol_loss does"
            )
        n = self.directions[0][0].shape[0]
        dq_a, dq_b = (
            -2 * grad * (target_unit - q_unit * cosine) / (n * q_norms)
            for q_unit, q_norms, target_unit, cosine in self.directions
        )
        return dq_a, dq_b, None, None


def byol_loss(q_a, q_b, target_a, target_b):
    """BYOL's loss as one op (scalar Tensor): online predictions Q_a, Q_b (N, D) against the
    target network's embeddings Z'_a, Z'_b (N, D), which are detached here."""
    return BYOLLoss.apply(q_a, q_b, _constant(target_a), _constant(target_b))


def byol_loss_autograd(q_a, q_b, target_a, target_b):
    """The same loss composed of primitive ops, so autograd derives the gradient; the targets
    are detached, so autograd too sends them nothing."""

    def unit(x):
        return x * ((x**2).sum(axis=1, keepdims=True) ** -0.5)

    def direction(q, target):
        return (2 - 2 * (unit(q) * unit(target)).sum(axis=1)).mean()

    return direction(q_a, _constant(target_b)) + direction(q_b, _constant(target_a))


def _constant(x):
    return x.detach() if hasattr(x, "detach") else x


def ema_update(target_params, online_params, tau):
    """θ' <- τ θ' + (1 - τ) θ for each pair, in place on the arrays, outside autograd.

    target_params, online_params: matching sequences of Tensors (e.g. `module.parameters()`
    of the target and of the online network) or of raw arrays. tau = 0 copies the online
    weights, which is how the target starts.
    """
    target_params, online_params = list(target_params), list(online_params)
    if len(target_params) != len(online_params):
        raise ValueError(
            f"the target has {len(target_params)} parameters and the online network "
            f"{len(online_params)}: they must be the same architecture"
        )
    for index, (target, online) in enumerate(zip(target_params, online_params, strict=True)):
        target, online = getattr(target, "data", target), getattr(online, "data", online)
        if target.shape != online.shape:
            raise ValueError(
                f"parameter {index}: target shape {target.shape} != online shape {online.shape}"
            )
        target *= tau
        target += (1 - tau) * online


def ema_tau(step, total_steps, base=TAU_BASE):
    """The EMA rate at step k of K: τ = 1 - (1 - τ_base)(cos(πk/K) + 1)/2, from τ_base to 1."""
    return 1 - (1 - base) * (math.cos(math.pi * step / total_steps) + 1) / 2


def predictor(dim, hidden, rng=None):
    """BYOL's predictor MLP, (N, dim) -> (N, dim): Linear(dim, hidden) without bias (batch
    norm follows), BatchNorm1d, ReLU, Linear(hidden, dim). The paper: dim 256, hidden 4096."""
    return nn.Sequential(
        nn.Linear(dim, hidden, bias=False, rng=rng),
        nn.BatchNorm1d(hidden),
        nn.ReLU(),
        nn.Linear(hidden, dim, rng=rng),
    )
