"""BYOL: predict a slowly moving target network's embedding of the other view.

Grill et al., "Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning" (2020).
Two networks see the two views. The online network (encoder, projector, then a predictor
MLP) gives predictions Q^A, Q^B: (N, D); the target network (encoder and projector only) gives
Z'^A, Z'^B: (N, D). The loss asks each prediction to point the way of the target's embedding
of the other view, summed over both directions and averaged over the batch:

    L = (1/N) Σ_n [ (2 - 2 cos(q_a,n, z'_b,n)) + (2 - 2 cos(q_b,n, z'_a,n)) ]

2 - 2 cos(q, z') = |q/|q| - z'/|z'||², the squared distance of the two unit vectors.
No gradient reaches the target (the stop-gradient): its weights follow the online ones as an
exponential moving average instead (tinybt/methods/target.py, shared with Barlow Twins and
VICReg's --ema). Nothing in the loss forbids collapse; the predictor and the slow target are
what avoid it in practice.

Each vector is normalised with its squared norm floored at 1e-12, as DeepMind's BYOL code does
(`l2_normalize`), so that a zero row gives a zero unit vector, not NaN.

Defaults from the paper (Section 3.3, implementation details): the EMA's starting rate
ρ_base = 0.996 (`TAU_BASE` in target.py); the projector and the predictor are the same MLP,
Linear(4096), batch norm, ReLU, Linear(256), on a ResNet-50 (2048 features); tinybt's
predictor keeps that shape with the projector's sizes (`predictor.predictor`).
"""

from tinybt import distributed
from tinybt.methods.common import (
    constant,
    standardized_correlation,
    unit_rows,
    unit_rows_autograd,
)
from tinybt.methods.method import Method
from tinybt.methods.predictor import predictor
from tinybt.methods.target import follow, online_and_target
from tinybt.tensor import Function


class BYOLLoss(Function):
    """L(Q^A, Q^B, Z'^A, Z'^B), all (N, D) -> scalar, the gradient derived by hand.

    The targets Z'^A, Z'^B are constants (the stop-gradient): backward returns None for them,
    and refuses to run if they require a gradient. Pass them detached (`byol_loss` does).

    Backward, one direction, for one row q with target z' (unit vectors q̂ = q/|q|, ẑ = z'/|z'|):
        cos = q̂ · ẑ,  dq̂/dq = (I - q̂ q̂ᵀ) / |q|  =>  d cos/dq = (ẑ - q̂ cos) / |q|
        dL/dq = -2 (ẑ - q̂ cos) / (N |q|)                       (N, D), row by row
    Q^A is paired with Z'^B and Q^B with Z'^A. Where |q|² is under the floor, |q| is the
    constant floor, so dq̂/dq = I / |q| and the q̂ cos term drops out.

    Across P processes (tinybt.distributed) the mean over n is the whole batch's, and each
    process's backward gives dL/dQ for its own rows with the whole batch's N. Nothing else
    is global: each row's cosine involves that row alone, and the target's moving average
    is the same update of the same weights on every process.
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
            q_unit, q_norms, above_floor = unit_rows(q)
            target_unit = unit_rows(target)[0]
            cosine = (q_unit * target_unit).sum(axis=1, keepdims=True)  # (N, 1)
            self.directions.append((q_unit, q_norms, target_unit, cosine * above_floor))
            total = total + distributed.batch_mean(2 - 2 * cosine)
        self.cosine = float(1 - total / 4)  # mean cosine of the 2N pairs, for the logs
        return total

    def backward(self, grad):
        if any(self.needs_grad[2:]):
            raise RuntimeError(
                "BYOL's targets must get no gradient (the stop-gradient): pass them detached, "
                "as byol_loss does"
            )
        n = distributed.batch_count(self.directions[0][0].shape[0])
        dq_a, dq_b = (
            -2 * grad * (target_unit - q_unit * kept_cosine) / (n * q_norms)
            for q_unit, q_norms, target_unit, kept_cosine in self.directions
        )
        return dq_a, dq_b, None, None


def byol_loss(q_a, q_b, target_a, target_b):
    """BYOL's loss as one op (scalar Tensor): online predictions Q^A, Q^B (N, D) against the
    target network's embeddings Z'^A, Z'^B (N, D), which are detached here."""
    return BYOLLoss.apply(q_a, q_b, constant(target_a), constant(target_b))


def byol_loss_autograd(q_a, q_b, target_a, target_b):
    """The same loss composed of primitive ops, so autograd derives the gradient; the targets
    are detached, so autograd too sends them nothing."""

    def direction(q, target):
        return (2 - 2 * (unit_rows_autograd(q) * unit_rows_autograd(target)).sum(axis=1)).mean()

    return direction(q_a, constant(target_b)) + direction(q_b, constant(target_a))


# ----- the method -----
def objective(model, view_a, view_b):
    """Σ over both directions of mean_n (2 - 2 cos(q_n, z'_n)); logs the mean cosine."""
    _, (q_a, q_b), (target_a, target_b) = online_and_target(model, view_a, view_b)
    op = BYOLLoss()
    loss = op(q_a, q_b, constant(target_a), constant(target_b))
    return loss, {"cosine": op.cosine}


METHOD = Method(
    name="byol",
    objective=None,
    target_objective=objective,
    correlation=standardized_correlation,
    predictor=predictor,
    after_step=follow,
)
