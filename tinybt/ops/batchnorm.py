"""Batch standardisation, the heart of batch norm, with a fused, hand-derived backward.

Batch norm (Ioffe & Szegedy, 2015) standardises each feature over the batch and then applies
a learnt affine map: y = γ x̂ + β. Only the standardisation x̂ needs an op of its own: its
mean and variance depend on every row of the batch, and writing its gradient as one formula
is both faster and easier to check than composing it from a dozen primitive ops. The affine
part, and evaluation with fixed running statistics, are plain elementwise arithmetic (see
tinybt.nn.BatchNorm1d). The Barlow Twins loss standardises its embeddings with the same op.
"""

from tinybt.backend import get_array_module
from tinybt.tensor import Function


def feature_mean(*arrays):
    """The mean of the product of `arrays` over every axis but axis 1, the feature axis.

    arrays: one or more of the same shape, (N, D) or (N, C, H, W) -> (1, D) or (1, C, 1, 1),
    which broadcasts against them. feature_mean(x) is the mean of each feature, and
    feature_mean(x, y) the mean of x ⊙ y, without making x ⊙ y. einsum spells the sum out
    index by index ("nchw,nchw->c": Σ_n,h,w x y), and on the CPU it is two to three times as
    fast as (x * y).mean(axis=(0, 2, 3)), which batch norm would run on every activation.
    """
    x = arrays[0]
    indices = "nchw"[: x.ndim]
    sums = get_array_module(x).einsum(",".join([indices] * len(arrays)) + "->c", *arrays)
    return sums.reshape((1, -1) + (1,) * (x.ndim - 2)) / (x.size // x.shape[1])


class BatchStandardize(Function):
    """x̂ = (x - μ) / sqrt(σ² + eps) for each feature, μ and σ² its mean and biased variance
    over the batch.

    x: (N, D), statistics over axis 0; or (N, C, H, W), statistics over axes 0, 2, 3 (each
    channel is one feature, seen at every pixel of every image) -> x̂, same shape.

    The op changes nothing outside itself. It keeps the batch statistics it used, `mean` and
    `var` ((D,) or (C,), the variance biased: divided by m, the values per feature) and `count`
    (m), for the batch-norm layer that calls it to update the running averages it owns
    (tinybt.nn.BatchNorm2d).

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
                f"batch standardisation needs (N, D) or (N, C, H, W) input, got shape {x.shape}"
            )
        xp = get_array_module(x)
        self.count = x.size // x.shape[1]  # m: values per feature
        if self.count < 2:
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
