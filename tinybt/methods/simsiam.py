"""SimSiam: predict the same network's embedding of the other view, behind a stop-gradient.

Chen and He, "Exploring Simple Siamese Representation Learning" (CVPR 2021). One network
(encoder and projector) sees both views and gives Z^A, Z^B: (N, D); a predictor MLP on top
gives Q^A, Q^B: (N, D). Each prediction is pulled towards the other view's embedding, which is
a constant (the stop-gradient), by the negative cosine similarity, averaged over the batch and
over the two directions (the paper's Eq. 3-4):

    L = -(1/2) [ mean_n cos(q^A_n, z^B_n) + mean_n cos(q^B_n, z^A_n) ]      in [-1, 1]

There is no target network and no EMA: the stop-gradient and the predictor are what keep the
embeddings from collapsing (the paper's Section 4: without the stop-gradient they collapse).

Defaults from the official code (facebookresearch/simsiam, simsiam/builder.py and
main_simsiam.py) and the paper (Section 3, "Baseline settings"):
- the predictor is a bottleneck, Linear(D, D/4) without bias, BatchNorm1d, ReLU, Linear(D/4, D)
  (pred_dim 512 for dim 2048); tinybt keeps the ratio with the projector's D;
- the official projector is 3 layers of the encoder's width with batch norm after each, the
  last without affine parameters; tinybt's projector (--projector) is the one every method uses;
- SGD with momentum 0.9, weight decay 1e-4, lr = 0.05 x batch / 256 on a cosine schedule, the
  predictor's learning rate fixed (--fix-pred-lr). tinybt's optimiser options are the run's,
  not the method's: `--optimizer sgd --lr 0.0125 --weight-decay 1e-4` gives the official rule
  at batch 64; one learning-rate schedule serves every parameter, the predictor's included.

Each vector is normalised with its squared norm floored at 1e-12 (common.unit_rows), as BYOL;
torch's cosine_similarity floors the product of the norms at 1e-8 instead, which differs only
for rows of norm about 1e-4 or less.
"""

from tinybt import distributed
from tinybt.methods.common import constant, standardized_correlation, unit_rows, unit_rows_autograd
from tinybt.methods.method import Method
from tinybt.methods.predictor import online_and_predictions, predictor
from tinybt.tensor import Function


class SimSiamLoss(Function):
    """L(Q^A, Q^B, Z^A, Z^B), all (N, D) -> scalar, the gradient derived by hand.

    Z^A, Z^B are constants (the stop-gradient): backward returns None for them, and refuses to
    run if they require a gradient. Pass them detached (`simsiam_loss` does).

    Backward, one direction, for one row q with embedding z (q̂ = q/|q|, ẑ = z/|z|):
        cos = q̂ · ẑ,  dq̂/dq = (I - q̂ q̂ᵀ) / |q|  =>  d cos/dq = (ẑ - q̂ cos) / |q|
        dL/dq = -(ẑ - q̂ cos) / (2 N |q|)                        (N, D), row by row
    Q^A is paired with Z^B and Q^B with Z^A. Where |q|² is under the floor, |q| is the constant
    floor, so dq̂/dq = I / |q| and the q̂ cos term drops out. (The paper writes p for the
    predictions, and the arguments are named p_a, p_b after it; P here counts processes.)

    Across P processes the mean over n is the whole batch's (distributed.batch_mean), and each
    process's backward gives dL/dQ for its own rows with the whole batch's N.
    """

    def forward(self, p_a, p_b, z_a, z_b):
        shapes = {x.shape for x in (p_a, p_b, z_a, z_b)}
        if len(shapes) != 1 or p_a.ndim != 2:
            raise ValueError(
                "SimSiam's predictions and embeddings must all be (N, D), got "
                f"{[x.shape for x in (p_a, p_b, z_a, z_b)]}"
            )
        self.directions = []  # (unit prediction, its norm, unit embedding, kept cosine)
        total = 0.0
        for p, z in ((p_a, z_b), (p_b, z_a)):
            p_unit, p_norms, above_floor = unit_rows(p)
            z_unit = unit_rows(z)[0]
            cosine = (p_unit * z_unit).sum(axis=1, keepdims=True)  # (N, 1)
            self.directions.append((p_unit, p_norms, z_unit, cosine * above_floor))
            total = total - distributed.batch_mean(cosine) / 2
        self.cosine = float(-total)  # the mean cosine of the 2N pairs, for the logs
        return total

    def backward(self, grad):
        if any(self.needs_grad[2:]):
            raise RuntimeError(
                "SimSiam's embeddings must get no gradient on the loss's side (the "
                "stop-gradient): pass them detached, as simsiam_loss does"
            )
        n = distributed.batch_count(self.directions[0][0].shape[0])
        dp_a, dp_b = (
            -grad * (z_unit - p_unit * kept_cosine) / (2 * n * p_norms)
            for p_unit, p_norms, z_unit, kept_cosine in self.directions
        )
        return dp_a, dp_b, None, None


def simsiam_loss(p_a, p_b, z_a, z_b):
    """SimSiam's loss as one op (scalar Tensor): predictions Q^A, Q^B (N, D) against the
    embeddings Z^A, Z^B (N, D) of the same network, which are detached here."""
    return SimSiamLoss.apply(p_a, p_b, constant(z_a), constant(z_b))


def simsiam_loss_autograd(p_a, p_b, z_a, z_b):
    """The same loss composed of primitive ops, so autograd derives the gradient; the
    embeddings are detached, so autograd too sends them nothing."""

    def direction(p, z):
        return (unit_rows_autograd(p) * unit_rows_autograd(z)).sum(axis=1).mean()

    return -(direction(p_a, constant(z_b)) + direction(p_b, constant(z_a))) / 2


def bottleneck_predictor(dim, hidden, rng=None):
    """SimSiam's predictor, (N, dim) -> (N, dim) through a hidden layer of dim / 4 (the
    official 2048 -> 512 -> 2048), whatever the projector's width `hidden`."""
    return predictor(dim, max(dim // 4, 1), rng)


# ----- the method -----
def objective(model, view_a, view_b):
    """-(1/2) Σ over both directions of mean_n cos(p_n, z_n), the z behind a stop-gradient;
    logs the mean cosine. `model` is a WithPredictor (tinybt/methods/predictor.py)."""
    (z_a, z_b), (p_a, p_b) = online_and_predictions(model, view_a, view_b)
    op = SimSiamLoss()
    loss = op(p_a, p_b, constant(z_a), constant(z_b))
    return loss, {"cosine": op.cosine}


METHOD = Method(
    name="simsiam",
    objective=objective,
    target_objective=None,
    correlation=standardized_correlation,
    predictor=bottleneck_predictor,
)
