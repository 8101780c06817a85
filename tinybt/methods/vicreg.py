"""VICReg's loss: variance, invariance and covariance terms, on the raw embeddings.

Bardes, Ponce and LeCun, "VICReg: Variance-Invariance-Covariance Regularization for
Self-Supervised Learning" (ICLR 2022). For the two views' embeddings Z^A, Z^B: (N, D), with
each view centred, Z̄ = Z - mean_n Z, and statistics over the batch with N - 1:

    invariance  s = (1 / ND) Σ_n,j (Z^A - Z^B)_nj²             mean squared error
    variance    v = (v(Z^A) + v(Z^B)) / 2,   v(Z) = (1/D) Σ_j max(0, γ - σ_j),
                σ_j = sqrt(Var_j + ε),  Var_j = Σ_n Z̄_nj² / (N - 1)     each dimension's std
    covariance  c = c(Z^A) + c(Z^B),   c(Z) = (1/D) Σ_{i≠j} K_ij²,   K = Z̄ᵀ Z̄ / (N - 1)   (D, D)
    loss        L = μ_s s + μ_v v + μ_c c

Invariance pulls the two views together; the variance hinge keeps every dimension's spread
above γ, so the embeddings cannot collapse to a point; the covariance term decorrelates the
dimensions, like Barlow Twins' off-diagonal term. Unlike Barlow Twins nothing standardises the
embeddings: the variance term holds their scale up instead.

Defaults from the official code (facebookresearch/vicreg, main_vicreg.py): sim_coeff 25,
std_coeff 25, cov_coeff 1, γ = 1 (the hinge `relu(1 - std)`), ε = 1e-4 (`x.var(dim=0) + 0.0001`);
the variance hinge is averaged over the D dimensions and over the two views (`/ 2`); the
covariance is divided by N - 1 (`batch_size - 1`), summed over the two views, each divided by D;
Var uses N - 1 too (torch's default). The paper's projector is 8192-8192-8192; tinybt's is
512-512-512. The weights are kept: every term is already a mean over dimensions (the
covariance's division by D makes it grow like D, not D², with the dimension).

This file holds the loss twice: `vicreg_loss`, one op with the gradient derived by hand, and
`vicreg_loss_autograd`, the same formula composed of primitive ops (notebook 09). With --ema it
learns against a target network (tinybt/methods/target.py): L(Q^A, Z'^B) + L(Q^B, Z'^A), the
target's variance and covariance terms constants, so only the online side's are learnt from.

The C a VICReg run snapshots and draws is not a quantity of its loss: it is the standardised
cross-correlation of the two views' embeddings, Ẑ^Aᵀ Ẑ^B / N, as Barlow Twins forms it. Its
diagonal shows how far invariance has made the views agree, dimension by dimension; its
off-diagonal shows the redundancy left between dimensions, which VICReg's covariance term
reduces within each view (K) rather than across the two.
"""

from tinybt import distributed
from tinybt.backend import get_array_module
from tinybt.methods.common import off_diagonal, standardized_correlation
from tinybt.methods.method import Method, Option, zero_or_positive
from tinybt.methods.target import both_directions, follow
from tinybt.tensor import Function

SIM_COEFF = 25.0  # μ_s, the invariance weight (official code's --sim-coeff)
STD_COEFF = 25.0  # μ_v, the variance weight (--std-coeff)
COV_COEFF = 1.0  # μ_c, the covariance weight (--cov-coeff)
GAMMA = 1.0  # the target standard deviation of every dimension
EPS = 1e-4  # inside the square root, as the official code


def _view_statistics(z, gamma, eps):
    """One view's pieces, (N, D) -> centred Z̄ (N, D), σ (D,), K (D, D), v(Z), c(Z).

    Global across processes (tinybt.distributed): the mean, the variances and the
    covariances are the whole batch's, each a batch sum added up over the processes. The
    hinge holds up the spread of the embeddings of the batch, and the covariance term
    decorrelates them over the batch; taken per process they would judge batches P times
    smaller, whose variances and covariances are noisier (and VICReg's N - 1 would differ).
    """
    xp = get_array_module(z)
    n, d = distributed.batch_count(len(z)), z.shape[1]
    centred = z - distributed.batch_mean(z, axis=0)
    std = xp.sqrt(distributed.sum_over_processes((centred**2).sum(axis=0)) / (n - 1) + eps)
    covariance = distributed.sum_over_processes(centred.T @ centred) / (n - 1)
    variance_term = xp.maximum(gamma - std, 0).mean()
    covariance_term = ((covariance**2).sum() - (xp.diagonal(covariance) ** 2).sum()) / d
    return centred, std, covariance, variance_term, covariance_term


def _check_views(z_a, z_b):
    if z_a.shape != z_b.shape or z_a.ndim != 2 or z_a.shape[0] < 2:
        raise ValueError(
            "the two views' embeddings must both be (N, D) with N >= 2 (the variance needs "
            f"N - 1 > 0), got {z_a.shape} and {z_b.shape}"
        )


def vicreg_terms(z_a, z_b, gamma=GAMMA, eps=EPS):
    """The three unweighted terms for arrays z_a, z_b: (N, D): (invariance, variance,
    covariance), as floats; the loss is SIM_COEFF s + STD_COEFF v + COV_COEFF c. For logs."""
    _check_views(z_a, z_b)
    *_, variance_a, covariance_a = _view_statistics(z_a, gamma, eps)
    *_, variance_b, covariance_b = _view_statistics(z_b, gamma, eps)
    invariance = distributed.batch_mean((z_a - z_b) ** 2)
    return (
        float(invariance),
        float((variance_a + variance_b) / 2),
        float(covariance_a + covariance_b),
    )


class VICRegLoss(Function):
    """L(Z^A, Z^B) with Z^A, Z^B: (N, D) -> scalar, the gradient derived by hand.

    The forward keeps the unweighted terms as `self.invariance`, `self.variance` and
    `self.covariance` (floats), so that training can log them.

    Backward, one term at a time, for view a (view b the same with the roles swapped; the
    invariance term is the only one that mixes the views). The steps (notebook 09 sets them up):
        invariance:  s is a mean of squares of Z^A - Z^B over N D entries.
        variance:    the hinge max(0, γ - σ_j) has slope -1 where σ_j < γ, 0 elsewhere; then
                     σ_j = sqrt(Var_j + ε) and Var_j = Σ_n Z̄_nj² / (N - 1).
        covariance:  call G = dL/dK (D, D); only the off-diagonal K_ij enter c, and Z̄ sits
                     on both sides of K = Z̄ᵀ Z̄ / (N - 1).
        centring:    Z̄ = Z - mean_n Z subtracts the batch mean of the gradient; look at what
                     it subtracts from a gradient that is Z̄ times something per column.
    The forward saves each view's (Z̄, σ, K, v, c) as `self.view_a` and `self.view_b`.

    Across P processes the statistics are the whole batch's (see `_view_statistics`), the
    invariance is a mean over the whole batch, and each process's backward gives dL/dZ for
    its own rows with the whole batch's N.
    """

    def forward(
        self,
        z_a,
        z_b,
        sim_coeff=SIM_COEFF,
        std_coeff=STD_COEFF,
        cov_coeff=COV_COEFF,
        gamma=GAMMA,
        eps=EPS,
    ):
        _check_views(z_a, z_b)
        self.coeffs = sim_coeff, std_coeff, cov_coeff
        self.gamma = gamma
        self.difference = z_a - z_b
        self.view_a = _view_statistics(z_a, gamma, eps)
        self.view_b = _view_statistics(z_b, gamma, eps)
        self.count = distributed.batch_count(len(z_a))  # N, the whole batch's
        invariance = distributed.batch_mean(self.difference**2)
        variance = (self.view_a[3] + self.view_b[3]) / 2
        covariance = self.view_a[4] + self.view_b[4]
        self.invariance, self.variance = float(invariance), float(variance)
        self.covariance = float(covariance)
        return sim_coeff * invariance + std_coeff * variance + cov_coeff * covariance

    def backward(self, grad):
        # BEGIN SOLUTION vicreg: return (dL/dZ^A, dL/dZ^B) for the VICReg loss
        # invariance:  dL/dZ^A = μ_s 2 (Z^A - Z^B) / ND,   dL/dZ^B its negative
        # variance:    dL/dσ_j = -μ_v / 2D where σ_j < γ (else 0),   dσ_j/dVar_j = 1 / 2σ_j,
        #              dVar_j/dZ̄_nj = 2 Z̄_nj / (N - 1)  =>  dL/dZ_nj = dL/dσ_j Z̄_nj / ((N - 1) σ_j)
        # covariance:  G = μ_c 2 K_off / D (K with a zero diagonal), symmetric,
        #              so dL/dZ̄ = 2 Z̄ G / (N - 1)
        # centring passes both unchanged: each column of Z̄ sums to 0, so they have zero mean
        xp = get_array_module(self.difference)
        sim_coeff, std_coeff, cov_coeff = self.coeffs
        n, d = self.count, self.difference.shape[1]
        d_invariance = sim_coeff * 2 * self.difference / (n * d)
        grads = []
        for centred, std, covariance, _, _ in (self.view_a, self.view_b):
            d_std = -std_coeff / (2 * d) * (std < self.gamma).astype(std.dtype)  # not float64
            d_variance = d_std * centred / ((n - 1) * std)
            g = 2 * cov_coeff * covariance / d
            xp.fill_diagonal(g, 0)
            d_covariance = 2 * centred @ g / (n - 1)
            grads.append(d_variance + d_covariance)
        return grad * (d_invariance + grads[0]), grad * (grads[1] - d_invariance)
        # END SOLUTION


def vicreg_loss(
    z_a, z_b, sim_coeff=SIM_COEFF, std_coeff=STD_COEFF, cov_coeff=COV_COEFF, gamma=GAMMA, eps=EPS
):
    """The VICReg loss of two (N, D) embedding Tensors, as one op (scalar Tensor)."""
    return VICRegLoss.apply(
        z_a,
        z_b,
        sim_coeff=sim_coeff,
        std_coeff=std_coeff,
        cov_coeff=cov_coeff,
        gamma=gamma,
        eps=eps,
    )


def vicreg_loss_autograd(
    z_a, z_b, sim_coeff=SIM_COEFF, std_coeff=STD_COEFF, cov_coeff=COV_COEFF, gamma=GAMMA, eps=EPS
):
    """The same loss composed of primitive ops, so autograd derives the gradient.

    Mirrors the official code line by line: MSE, centre, std, hinge, covariance, off-diagonal.
    """
    n, d = z_a.shape
    invariance = ((z_a - z_b) ** 2).mean()

    def variance_and_covariance(z):
        centred = z - z.mean(axis=0)
        std = ((centred**2).sum(axis=0) / (n - 1) + eps) ** 0.5
        covariance = centred.T @ centred / (n - 1)
        return (gamma - std).relu().mean(), (off_diagonal(covariance) ** 2).sum() / d

    variance_a, covariance_a = variance_and_covariance(z_a)
    variance_b, covariance_b = variance_and_covariance(z_b)
    variance = variance_a / 2 + variance_b / 2
    covariance = covariance_a + covariance_b
    return sim_coeff * invariance + std_coeff * variance + cov_coeff * covariance


# ----- the method -----
def _loss_and_terms(z_a, z_b, sim_coeff=SIM_COEFF, std_coeff=STD_COEFF, cov_coeff=COV_COEFF):
    """(loss, its three unweighted terms) of two (N, D) Tensors."""
    op = VICRegLoss()
    loss = op(z_a, z_b, sim_coeff=sim_coeff, std_coeff=std_coeff, cov_coeff=cov_coeff)
    return loss, {"invariance": op.invariance, "variance": op.variance, "covariance": op.covariance}


def objective(model, view_a, view_b, **weights):
    """Both views through one network, μ_s s + μ_v v + μ_c c; logs the unweighted terms."""
    return _loss_and_terms(model(view_a), model(view_b), **weights)


def _check(options):
    """All three weights 0 is a loss of 0 that teaches nothing."""
    if not any(options[name] for name in ("sim_coeff", "std_coeff", "cov_coeff")):
        return (
            "--sim-coeff, --std-coeff and --cov-coeff are all 0, so the loss is 0 and nothing "
            "is learnt: give at least one a positive weight"
        )
    return None


METHOD = Method(
    name="vicreg",
    objective=objective,
    target_objective=both_directions(_loss_and_terms),
    correlation=standardized_correlation,
    options={
        "sim_coeff": Option(SIM_COEFF, "weight of the invariance term (paper)", zero_or_positive),
        "std_coeff": Option(STD_COEFF, "weight of the variance term (paper)", zero_or_positive),
        "cov_coeff": Option(COV_COEFF, "weight of the covariance term (paper)", zero_or_positive),
    },
    after_step=follow,
    check=_check,
)
