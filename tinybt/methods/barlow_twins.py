"""Barlow Twins: make the cross-correlation of two views' embeddings the identity.

Zbontar, Jing, Misra, LeCun and Deny, "Barlow Twins: Self-Supervised Learning via Redundancy
Reduction" (ICML 2021).
Given the embeddings of two augmented views of the same N images, Z^A and Z^B: (N, D),

    1. standardise each dimension along the batch:  Ẑ = (Z - mean_n Z) / sqrt(var_n Z + eps)
    2. cross-correlation:                            C = Ẑ^Aᵀ Ẑ^B / N                  (D, D)
    3. loss:  L = Σ_i (1 - C_ii)²  +  λ Σ_{i≠j} C_ij²
                  invariance          redundancy reduction

C_ii = 1 means dimension i agrees across the two views (invariance to the augmentations);
C_ij = 0 means dimensions i and j carry different information. λ = 0.0051 in the paper
balances the D diagonal terms against the D(D-1) off-diagonal ones.

This file holds the loss twice: `barlow_twins_loss`, one op of the engine with the gradient
derived by hand (notebook 05 derives it), and `barlow_twins_loss_autograd`, the same formula
composed of primitive ops. The tests check that they agree, with each other, with central
differences and with PyTorch. `METHOD` is the method as training reads it: one network for
both views, or (--ema) an EMA target network (tinybt/methods/target.py).
"""

import math

from tinybt import distributed
from tinybt.backend import get_array_module
from tinybt.methods.common import EPS, cross_correlation, normalise, off_diagonal
from tinybt.methods.method import Method, Option, zero_or_positive
from tinybt.methods.target import both_directions, follow
from tinybt.tensor import Function

LAMBDA = 0.0051  # the paper's weight of the off-diagonal (redundancy reduction) term


def correlation_summary(c):
    """What training logs and plots about C (D, D), either backend -> two floats:

    diag_mean      mean_i C_ii, which invariance pushes to 1
    off_diag_rms   sqrt(mean_{i≠j} C_ij²), which redundancy reduction pushes to 0. It cannot
                   reach 0 on a finite batch: two independent features measured on N samples
                   still correlate by about ±1/sqrt(N) (the noise floor the C figure draws).
    """
    xp = get_array_module(c)
    d = c.shape[0]
    diagonal = xp.diagonal(c)
    off_diagonal_squares = float((c**2).sum()) - float((diagonal**2).sum())
    return {
        "diag_mean": float(diagonal.mean()),
        "off_diag_rms": math.sqrt(max(off_diagonal_squares, 0.0) / (d * d - d)),
    }


def loss_terms(c, lambd=LAMBDA):
    """The two parts of the loss from C (D, D): (Σ_i (1 - C_ii)², λ Σ_{i≠j} C_ij²)."""
    diagonal = get_array_module(c).diagonal(c)
    on_diagonal = ((1 - diagonal) ** 2).sum()
    off_diagonal = lambd * ((c**2).sum() - (diagonal**2).sum())
    return on_diagonal, off_diagonal


class BarlowTwinsLoss(Function):
    """L(Z^A, Z^B) with Z^A, Z^B: (N, D) -> scalar, the gradient derived by hand.

    The op keeps the matrix it computed, `c` (D, D), and its two terms, `on_diagonal` and
    `off_diagonal` (floats): training logs and plots them from here (see `barlow_twins`).

    Backward, from the loss down: first G = dL/dC (D, D), one entry per term of L (the
    diagonal and the off-diagonal terms differ); then through the product C = Ẑ^Aᵀ Ẑ^B / N
    to dL/dẐ^A and dL/dẐ^B (N, D), as in MatMul's backward; then through the normalisation
    of each view, whose op (self.normalise_a, self.normalise_b) has its own backward.

    Global across P processes (tinybt.distributed), each holding N / P rows of Z^A and Z^B:
    the standardisation's mean and std along the batch are the whole batch's (its op,
    BatchStandardize, sums across processes), and so is C: Ẑ^Aᵀ Ẑ^B is a sum over the batch's
    rows, so each process's Ẑ^Aᵀ Ẑ^B is all-reduced before dividing by the whole N. Without
    that, each process would push its own C to the identity: a different loss, on batches P
    times smaller. Every process then holds the same C and loss; its backward gives dL/dZ
    for its own rows, with the whole batch's N.
    """

    def forward(self, z_a, z_b, lambd=LAMBDA, standardized=True, eps=EPS):
        if z_a.shape != z_b.shape or z_a.ndim != 2:
            raise ValueError(
                f"the two views' embeddings must both be (N, D), got {z_a.shape} and {z_b.shape}"
            )
        self.lambd = lambd
        self.normalise_a, self.z_a_hat = normalise(z_a, standardized, eps)
        self.normalise_b, self.z_b_hat = normalise(z_b, standardized, eps)
        self.count = distributed.batch_count(z_a.shape[0])  # N, the whole batch's
        self.c = distributed.sum_over_processes(self.z_a_hat.T @ self.z_b_hat) / self.count
        on_diagonal, off_diagonal = loss_terms(self.c, lambd)
        self.on_diagonal, self.off_diagonal = float(on_diagonal), float(off_diagonal)
        return on_diagonal + off_diagonal

    def backward(self, grad):
        # BEGIN SOLUTION bt-loss: return (dL/dZ^A, dL/dZ^B) for the Barlow Twins loss
        # dL/dC_ii = -2 (1 - C_ii),   dL/dC_ij = 2 λ C_ij  (i ≠ j)        call it G (D, D)
        # C = Ẑ^Aᵀ Ẑ^B / N  =>  dL/dẐ^A = Ẑ^B Gᵀ / N,   dL/dẐ^B = Ẑ^A G / N   (N, D)
        # then back through each view's normalisation, with its op's backward
        xp = get_array_module(self.c)
        n = self.count
        dc = 2 * self.lambd * self.c
        xp.fill_diagonal(dc, -2 * (1 - xp.diagonal(self.c)))
        dc *= grad
        dz_a_hat = self.z_b_hat @ dc.T / n
        dz_b_hat = self.z_a_hat @ dc / n
        (dz_a,), (dz_b,) = self.normalise_a.backward(dz_a_hat), self.normalise_b.backward(dz_b_hat)
        return dz_a, dz_b
        # END SOLUTION


def barlow_twins_loss(z_a, z_b, lambd=LAMBDA, standardized=True, eps=EPS):
    """The Barlow Twins loss of two (N, D) embedding Tensors, as one op (scalar Tensor)."""
    return BarlowTwinsLoss.apply(z_a, z_b, lambd=lambd, standardized=standardized, eps=eps)


def barlow_twins(z_a, z_b, lambd=LAMBDA, standardized=True, eps=EPS):
    """(loss, c, terms): the loss of two (N, D) embedding Tensors, as `barlow_twins_loss`,
    with the C (D, D) it was computed from and what training logs about it: the two terms
    of the loss and `correlation_summary(c)`. C is computed once, by the loss."""
    op = BarlowTwinsLoss()
    loss = op(z_a, z_b, lambd=lambd, standardized=standardized, eps=eps)
    terms = {"on_diag": op.on_diagonal, "off_diag": op.off_diagonal}
    return loss, op.c, {**terms, **correlation_summary(op.c)}


def barlow_twins_loss_autograd(z_a, z_b, lambd=LAMBDA, standardized=True, eps=EPS):
    """The same loss composed of primitive ops, so autograd derives the gradient.

    Mirrors the official code line by line: normalise, C = Ẑ^Aᵀ Ẑ^B / N, on_diag, off_diag.
    """
    n, d = z_a.shape

    def normalise(z):
        centred = z - z.mean(axis=0)
        return centred * (z.var(axis=0) + eps) ** -0.5 if standardized else centred

    c = normalise(z_a).T @ normalise(z_b) / n
    diagonal = c.reshape(-1)[:: d + 1]
    on_diag = ((diagonal - 1.0) ** 2).sum()
    off_diag = (off_diagonal(c) ** 2).sum()
    return on_diag + lambd * off_diag


# ----- the method -----
def objective(model, view_a, view_b, lambd=LAMBDA, standardize=True):
    """Both views through one network, L of their embeddings; logs the two terms and the
    summary of the loss's own C."""
    loss, _, terms = barlow_twins(model(view_a), model(view_b), lambd, standardize)
    return loss, terms


def _loss_and_terms(z_a, z_b, lambd=LAMBDA, standardize=True):
    """(loss, its two terms) for two (N, D) Tensors: what each direction against a target adds."""
    op = BarlowTwinsLoss()
    loss = op(z_a, z_b, lambd=lambd, standardized=standardize)
    return loss, {"on_diag": op.on_diagonal, "off_diag": op.off_diagonal}


def correlation(z_a, z_b, options):
    """The loss's C of two (N, D) arrays: standardised, or only centred with --no-standardize."""
    return cross_correlation(z_a, z_b, standardized=options["standardize"])


METHOD = Method(
    name="barlow",
    objective=objective,
    target_objective=both_directions(_loss_and_terms),
    correlation=correlation,
    options={
        "lambd": Option(
            LAMBDA, "λ, the weight of the off-diagonal (redundancy) term", zero_or_positive
        ),
        "standardize": Option(True, "standardise embeddings along the batch (paper: yes)"),
    },
    after_step=follow,
)
