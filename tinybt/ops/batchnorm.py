"""Batch standardisation, the heart of batch norm, with a fused, hand-derived backward.

Batch norm (Ioffe & Szegedy, 2015) standardises each feature over the batch and then applies
a learnt affine map: y = γ x̂ + β. The standardisation x̂ needs an op of its own: its mean
and variance depend on every row of the batch, and writing its gradient as one formula is
both faster and easier to check than composing it from a dozen primitive ops. The Barlow
Twins loss standardises its embeddings with that op, BatchStandardize. Batch norm's layer in
training uses BatchNorm, the same op with γ and β inside: the gradients of γ and β are the
two sums the standardisation's backward computes anyway, so fusing them saves three passes
over the activations (notebook 03 has the timings). Evaluation with fixed running
statistics is plain elementwise arithmetic (see tinybt.nn.BatchNorm2d).
"""

from tinybt import distributed
from tinybt.backend import get_array_module
from tinybt.tensor import Function

# The axes of each layout, one letter each, as einsum spells them; c is the feature axis:
# (N, D) features, or (C, H, W, N) feature maps with the batch innermost (tinybt.ops.conv).
AXES = {2: "nc", 4: "chwn"}


def feature_axis(x):
    """The axis that holds the features of x: 1 for (N, D), 0 for (C, H, W, N)."""
    return AXES[x.ndim].index("c")


def feature_mean(*arrays):
    """The mean of the product of `arrays` over every axis but the feature axis.

    arrays: one or more of the same shape, (N, D) or (C, H, W, N) -> (1, D) or (C, 1, 1, 1),
    which broadcasts against them. feature_mean(x) is the mean of each feature, and
    feature_mean(x, y) the mean of x ⊙ y, without making x ⊙ y. einsum spells the sum over
    the batch out index by index ("chwn,chwn->chw": Σ_n x y, for each pixel of each channel);
    the pixels' sums are then added up by NumPy's pairwise sum. Two short float32 sums keep a
    channel's mean over a whole layer (131,072 values) within 1e-6, which one long running
    sum does not, and on the CPU the pair is faster than (x * y).mean(axis=(1, 2, 3)), which
    batch norm would run on every activation.

    Global across processes (tinybt.distributed): the mean is the whole batch's. Batch norm
    must standardise by the batch it was given, the global one, or P processes train P
    different networks on batches 1/P the size; so each process's sums are added up and
    divided by the whole batch's count. Every statistic and both means of the backward go
    through here. In one process the sums pass through untouched.
    """
    x = arrays[0]
    indices = AXES[x.ndim]
    per_pixel = get_array_module(x).einsum(
        ",".join([indices] * len(arrays)) + "->" + indices.replace("n", ""), *arrays
    )
    sums = per_pixel.reshape(len(per_pixel), -1).sum(axis=1)  # (D,) or (C,)
    sums = distributed.sum_over_processes(sums)
    shape = [1] * x.ndim
    shape[feature_axis(x)] = -1
    return sums.reshape(shape) / distributed.batch_count(x.size // sums.size)


class BatchStandardize(Function):
    """x̂ = (x - μ) / sqrt(σ² + eps) for each feature, μ and σ² its mean and biased variance
    over the batch.

    x: (N, D), statistics over axis 0; or (C, H, W, N), statistics over axes 1, 2, 3 (each
    channel is one feature, seen at every pixel of every image) -> x̂, same shape.

    The op changes nothing outside itself. It keeps the batch statistics it used, `mean` and
    `var` ((D,) or (C,), the variance biased: divided by m, the values per feature) and
    `batch_count` (m), for the batch-norm layer that calls it to update the running averages
    it owns (tinybt.nn.BatchNorm2d). `count` is the values per feature this process holds:
    m itself in one process, m / P when P processes share the batch (tinybt.distributed),
    whose statistics are then the whole batch's (see feature_mean).

    Backward. Write g = dL/dx̂, σ̂ = sqrt(σ² + eps), and means over the m values of a feature.
    x_k moves x̂_k directly and every x̂_l through μ and σ̂:
        dμ/dx_k = 1/m,   dσ²/dx_k = 2 (x_k - μ) / m,   so dσ̂/dx_k = x̂_k / m
    Differentiate x̂_l = (x_l - μ) / σ̂ by the quotient rule (δ_lk is 1 when l = k, else 0),
    then sum dL/dx_k = Σ_l g_l dx̂_l/dx_k and write its sums over l as means: a few
    feature_means of arrays of x's shape, no (m, m) matrix.
    """

    def forward(self, x, eps=1e-5):
        if x.ndim not in (2, 4):
            raise ValueError(
                f"batch standardisation needs (N, D) or (C, H, W, N) input, got shape {x.shape}"
            )
        xp = get_array_module(x)
        self.count = x.size // x.shape[feature_axis(x)]  # values per feature, this process's
        self.batch_count = distributed.batch_count(self.count)  # m, the whole batch's
        if self.batch_count < 2:
            raise ValueError(
                f"batch statistics need more than one value per feature, got shape {x.shape}: "
                "use a batch of at least 2, or eval mode"
            )
        mean = feature_mean(x)
        centred = x - mean
        var = feature_mean(centred, centred)  # biased: divides by m
        self.inv_std = 1 / xp.sqrt(var + eps)
        self.x_hat = centred * self.inv_std
        self.mean, self.var = mean.reshape(-1), var.reshape(-1)
        return self.x_hat

    def backward(self, grad):
        # BEGIN SOLUTION batchnorm: return (dL/dx,) for x_hat = (x - mean) / sqrt(var + eps)
        # dx̂_l/dx_k = (δ_lk - 1/m) / σ̂ - (x_l - μ) / σ̂² · x̂_k / m
        #           = (δ_lk - 1/m - x̂_l x̂_k / m) / σ̂,   so
        # dL/dx_k = Σ_l g_l dx̂_l/dx_k = (g_k - mean(g) - x̂_k mean(g ⊙ x̂)) / σ̂
        mean_grad = feature_mean(grad)
        mean_grad_x_hat = feature_mean(grad, self.x_hat)
        return (self.inv_std * (grad - mean_grad - self.x_hat * mean_grad_x_hat),)
        # END SOLUTION


class BatchNorm(BatchStandardize):
    """y = γ x̂ + β: batch standardisation followed by batch norm's affine map, in one op.

    x: as in BatchStandardize; gamma, beta: (D,) or (C,), one per feature -> y, x's shape.
    The batch statistics are kept as in BatchStandardize.

    Backward. Write g = dL/dy. Hint: γ and β are one number per feature, used at every one
    of the feature's m values; dL/dx̂ goes through the standardisation's backward. Look at
    which sums over a feature's values the three gradients need: the fused op computes each
    once. (Autograd, given γ x̂ + β as a Mul and an Add, would store two full-size arrays and
    sum each anew.)

    Across P processes the means (feature_mean) are the whole batch's, divided by m, the
    whole batch's count (self.batch_count). The gradients of γ and β are summed over the
    processes after the backward (tinybt.distributed.sum_gradients), so each process returns
    its own share, the sum over its own values: the count of those is self.count, m / P.
    """

    def forward(self, x, gamma, beta, eps=1e-5):
        x_hat = super().forward(x, eps)
        shape = [1] * x.ndim  # one value per feature, broadcast along the feature axis
        shape[feature_axis(x)] = -1
        self.gamma = gamma.reshape(shape)
        return x_hat * self.gamma + beta.reshape(shape)

    def backward(self, grad):
        # BEGIN SOLUTION batchnorm: return (dL/dx, dL/dgamma, dL/dbeta) for y = gamma x_hat + beta
        # dL/dx = γ / σ̂ (g - mean(g) - x̂ mean(g ⊙ x̂)),  dL/dγ = m mean(g ⊙ x̂),  dL/dβ = m mean(g)
        mean_grad = feature_mean(grad)
        mean_grad_x_hat = feature_mean(grad, self.x_hat)
        dx = self.gamma * self.inv_std * (grad - mean_grad - self.x_hat * mean_grad_x_hat)
        return dx, self.count * mean_grad_x_hat.reshape(-1), self.count * mean_grad.reshape(-1)
        # END SOLUTION
