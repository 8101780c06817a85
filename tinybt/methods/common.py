"""What several methods share, in one place, so that no method imports another.

The cross-correlation C of two views' embeddings (Barlow Twins' loss forms it; every run
snapshots it, whatever its method, so that its figure reads as Barlow Twins' does), the
off-diagonal entries of a square matrix, rows scaled to unit length (as arrays, and from
autograd's primitive ops), and a stop-gradient.
"""

from tinybt import distributed
from tinybt.backend import get_array_module
from tinybt.ops.batchnorm import BatchStandardize
from tinybt.tensor import Function

EPS = 1e-5  # as torch.nn.BatchNorm1d(affine=False), which the official Barlow Twins code uses
SQUARED_NORM_FLOOR = 1e-12  # DeepMind's BYOL: x / sqrt(max(|x|², 1e-12))


def unit_rows(x):
    """(x / |x| per row, |x| per row (N, 1), whether the row's |x|² is above the floor (N, 1))
    for x: (N, D); |x|² is floored at SQUARED_NORM_FLOOR, so a zero row gives zeros."""
    squared = (x**2).sum(axis=1, keepdims=True)
    norms = get_array_module(x).sqrt(get_array_module(x).maximum(squared, SQUARED_NORM_FLOOR))
    return x / norms, norms, squared > SQUARED_NORM_FLOOR


def unit_rows_autograd(x):
    """x / sqrt(max(|x|², floor)) per row of a Tensor x: (N, D), from primitive ops, so that
    autograd derives its gradient (the losses' *_autograd versions): max(|x|², floor) is
    written as floor + relu(|x|² - floor)."""
    squared = (x**2).sum(axis=1, keepdims=True)
    return x * (((squared - SQUARED_NORM_FLOOR).relu() + SQUARED_NORM_FLOOR) ** -0.5)


class Centre(Function):
    """Z - mean_n Z per column (N, D): the normalisation left when standardisation is off.
    dL/dZ = grad - mean_n(grad), since every row shares the mean. Both means are the whole
    batch's across processes (tinybt.distributed), as the standardisation's are."""

    def forward(self, z):
        return z - distributed.batch_mean(z, axis=0)

    def backward(self, grad):
        return (grad - distributed.batch_mean(grad, axis=0),)


def normalise(z, standardized, eps):
    """(op, Ẑ): the op that normalised z (N, D), whose backward we will need, and its output.

    Standardisation is batch norm's op without γ and β (tinybt/ops/batchnorm.py), exactly as
    the official code uses BatchNorm1d(affine=False)."""
    if standardized:
        op = BatchStandardize()
        return op, op.forward(z, eps=eps)
    op = Centre()
    return op, op.forward(z)


def cross_correlation(z_a, z_b, standardized=True, eps=EPS):
    """C = Ẑ^Aᵀ Ẑ^B / N (D, D) for arrays z_a, z_b: (N, D); for plots and logs.

    With standardized=False the embeddings are only centred, so C is the cross-covariance.
    Across processes, C of the whole batch, as the loss's (see BarlowTwinsLoss).
    """
    z_a_hat, z_b_hat = normalise(z_a, standardized, eps)[1], normalise(z_b, standardized, eps)[1]
    product = distributed.sum_over_processes(z_a_hat.T @ z_b_hat)
    return product / distributed.batch_count(z_a.shape[0])


def off_diagonal(c):
    """The D(D-1) off-diagonal entries of a square (D, D) matrix, flattened.

    The official code's trick: in the flattened matrix the diagonal entries sit D+1 apart, so
    dropping the last entry and viewing the rest as (D-1, D+1) puts every diagonal entry but
    the last in column 0; dropping that column leaves exactly the off-diagonal entries.
    Works on arrays and on Tensors (then it is differentiable).
    """
    d = c.shape[0]
    return c.reshape(-1)[:-1].reshape(d - 1, d + 1)[:, 1:].reshape(-1)


def standardized_correlation(z_a, z_b, options):
    """C of two (N, D) arrays, standardised whatever the options: what a run snapshots for a
    method whose loss forms no C of its own, so that its figure reads as Barlow Twins' does."""
    return cross_correlation(z_a, z_b)


def constant(x):
    """x cut from the graph (a Tensor detached; an array as it is): the stop-gradient."""
    return x.detach() if hasattr(x, "detach") else x
