"""The layers of a convnet: each op's and each module's backward against central differences,
and forward results against references computed independently here.

Gradient checks run in float64 on small shapes, every entry, with a random upstream gradient,
and inputs away from kinks (distinct values for max pooling, batches of at least 4 for batch
statistics). A correct backward agrees to about 1e-10; the bound is 1e-6.

2-D layers take feature maps laid out (C, H, W, N), the batch innermost; the references here
are written in the familiar (N, C, H, W) and compared through `batch_last`.
"""

import numpy as np
import pytest

from tinybt import backend, nn
from tinybt.gradcheck import assert_gradcheck
from tinybt.ops import (
    AvgPool2d,
    BatchNorm,
    BatchStandardize,
    Conv2d,
    MaxPool2d,
    col2im,
    global_avg_pool2d,
    im2col,
)
from tinybt.ops.batchnorm import feature_mean
from tinybt.tensor import Tensor

from .conftest import assert_close

TOL = 1e-6


def rand(*shape, seed=0):
    """Standard normal float64 values on the host."""
    return np.random.default_rng(seed).standard_normal(shape)


def distinct(*shape, seed=0):
    """float64 values at least 1 / size apart in a random order: no two entries of a pooling
    window are within a finite-difference step of each other, so the argmax never flips."""
    size = int(np.prod(shape))
    return np.random.default_rng(seed).permutation(size).reshape(shape) / size


def batch_last(x):
    """(N, C, H, W) -> (C, H, W, N), the layout of tinybt's 2-D layers."""
    return x.transpose(1, 2, 3, 0)


def conv2d_by_loops(x, weight, bias, stride, padding):
    """The definition of convolution, one output pixel at a time, on host arrays.
    x: (N, C, H, W) -> (N, F, OH, OW)."""
    N, C, H, W = x.shape
    F, _, KH, KW = weight.shape
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    OH, OW = (H + 2 * padding - KH) // stride + 1, (W + 2 * padding - KW) // stride + 1
    out = np.zeros((N, F, OH, OW))
    bias = np.zeros(F) if bias is None else bias
    for n in range(N):
        for f in range(F):
            for oh in range(OH):
                for ow in range(OW):
                    patch = x[n, :, oh * stride : oh * stride + KH, ow * stride : ow * stride + KW]
                    out[n, f, oh, ow] = (patch * weight[f]).sum() + bias[f]
    return out


# (stride, padding) for a (C, H, W, N) = (3, 5, 6, 2) input and 3x2 kernels: non-square everything
CONV_CASES = [(1, 0), (1, 1), (2, 0), (2, 1)]


# ----- conv2d -----
@pytest.mark.exercise("conv2d")  # im2col is the learner's: a wrong patch layout shows only here
@pytest.mark.parametrize("stride, padding", CONV_CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_forward_matches_loops(stride, padding, bias):
    x, weight, b = rand(2, 3, 5, 6), rand(4, 3, 3, 2, seed=1), rand(4, seed=2)
    inputs = (Tensor(batch_last(x)), Tensor(weight)) + ((Tensor(b),) if bias else ())
    out = Conv2d.apply(*inputs, stride=stride, padding=padding)
    expected = conv2d_by_loops(x, weight, b if bias else None, stride, padding)
    assert_close(out.data, batch_last(expected), rtol=1e-12, atol=1e-12, what="conv2d forward")


PATCH_AXES = {"c": "C", "i": "KH", "j": "KW"}


def patches_by_loops(x, kernel, stride, padding, order):
    """im2col of x (C, H, W, N) written out entry by entry, its rows in `order`, a
    permutation of "c", "i", "j" (the patch's channel, row and column): (C KH KW, OH OW N)."""
    C, H, W, N = x.shape
    KH, KW = kernel
    x_pad = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    OH, OW = (H + 2 * padding - KH) // stride + 1, (W + 2 * padding - KW) // stride + 1
    sizes = {"c": C, "i": KH, "j": KW}
    cols = np.empty((*(sizes[axis] for axis in order), OH, OW, N))
    for c, i, j, oh, ow in np.ndindex(C, KH, KW, OH, OW):
        index = {"c": c, "i": i, "j": j}
        row = tuple(index[axis] for axis in order)
        cols[(*row, oh, ow)] = x_pad[c, oh * stride + i, ow * stride + j]
    return cols.reshape(C * KH * KW, OH * OW * N)


@pytest.mark.exercise("conv2d")
@pytest.mark.parametrize("stride, padding", CONV_CASES)
def test_im2col_rows_are_channel_then_kernel_row_then_column(stride, padding):
    """Row c KH KW + i KW + j of im2col's output holds entry (c, i, j) of every patch: the
    order in which the weight (F, C, KH, KW) flattens to (F, C KH KW), so W @ cols pairs each
    weight with its pixel. Another order with col2im to match passes the gradient checks and
    the adjoint test, and computes another convolution."""
    x, kernel = rand(3, 5, 6, 2), (3, 2)
    cols = backend.to_host(im2col(backend.to_device(x), kernel, stride, padding))
    expected = patches_by_loops(x, kernel, stride, padding, "cij")
    if cols.shape == expected.shape and not np.allclose(cols, expected, rtol=0, atol=1e-12):
        for order in ("cji", "icj", "ijc", "jci", "jic"):
            wrong = ", ".join(PATCH_AXES[axis] for axis in order)
            assert not np.allclose(cols, patches_by_loops(x, kernel, stride, padding, order)), (
                f"im2col's rows are in ({wrong}) order: they must be in (C, KH, KW) order, row "
                "c KH KW + i KW + j holding entry (c, i, j) of the patch, as the weight "
                "(F, C, KH, KW) flattens"
            )
    assert_close(
        cols, expected, rtol=0, atol=1e-12, what="im2col: rows (C, KH, KW), columns (OH, OW, N)"
    )


@pytest.mark.exercise("conv2d")
@pytest.mark.parametrize("stride, padding", CONV_CASES)
def test_conv2d_col2im_is_adjoint_of_im2col(stride, padding):
    """<im2col(x), y> = <x, col2im(y)>: col2im is the transpose of the linear map im2col."""
    x = backend.to_device(rand(3, 5, 6, 2))
    cols = im2col(x, (3, 2), stride, padding)
    y = backend.to_device(rand(*cols.shape, seed=1))
    left = float((cols * y).sum())
    right = float((x * col2im(y, x.shape, (3, 2), stride, padding)).sum())
    assert abs(left - right) < 1e-10 * abs(left), (
        f"<im2col(x), y> = {left} but <x, col2im(y)> = {right}"
    )


@pytest.mark.exercise("conv2d")
@pytest.mark.parametrize("stride, padding", CONV_CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_backward(stride, padding, bias):
    inputs = [rand(3, 5, 6, 2), rand(4, 3, 3, 2, seed=1)] + ([rand(4, seed=2)] if bias else [])
    assert_gradcheck(
        lambda *t: Conv2d.apply(*t, stride=stride, padding=padding),
        inputs,
        tol=TOL,
        what=f"conv2d stride={stride} padding={padding} bias={bias}",
        names=["x", "weight", "bias"][: len(inputs)],
    )


@pytest.mark.exercise("conv2d")
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_module_backward(bias):
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=bias, rng=backend.rng(0)).astype("float64")
    assert_gradcheck(
        conv, [rand(3, 5, 6, 2)], params=conv.named_parameters(), tol=TOL, what="nn.Conv2d"
    )


# ----- pooling -----
# (kernel, stride): overlapping windows, and a 3x2 kernel, which tells KH from KW
POOL_CASES = [(2, 2), (3, 2), ((3, 2), 1)]


def test_maxpool_forward_expected():
    x = Tensor(np.arange(16.0).reshape(1, 4, 4, 1))  # one channel of one 4x4 image
    assert_close(MaxPool2d.apply(x, kernel_size=2, stride=2).data[0, ..., 0], [[5, 7], [13, 15]])
    assert_close(MaxPool2d.apply(x, kernel_size=3, stride=1).data[0, ..., 0], [[10, 11], [14, 15]])


@pytest.mark.exercise("maxpool")
@pytest.mark.parametrize("kernel, stride", POOL_CASES)
def test_maxpool_backward(kernel, stride):
    assert_gradcheck(
        lambda x: MaxPool2d.apply(x, kernel_size=kernel, stride=stride),
        [distinct(3, 7, 6, 2)],
        tol=TOL,
        what=f"max pool kernel={kernel} stride={stride}",
    )


@pytest.mark.exercise("maxpool")
def test_maxpool_ties_send_the_gradient_to_the_first_maximum():
    x = Tensor(np.ones((1, 2, 2, 1)), requires_grad=True)
    MaxPool2d.apply(x, kernel_size=2, stride=2).backward(np.full((1, 1, 1, 1), 3.0))
    assert_close(x.grad[0, ..., 0], [[3, 0], [0, 0]], what="gradient of a window of equal values")


def test_avgpool_forward_expected():
    x = Tensor(np.arange(16.0).reshape(1, 4, 4, 1))
    out = AvgPool2d.apply(x, kernel_size=2, stride=2).data[0, ..., 0]
    assert_close(out, [[2.5, 4.5], [10.5, 12.5]])
    assert_close(AvgPool2d.apply(x, kernel_size=3, stride=1).data[0, ..., 0], [[5, 6], [9, 10]])


@pytest.mark.exercise("avgpool")
@pytest.mark.parametrize("kernel, stride", POOL_CASES)
def test_avgpool_backward(kernel, stride):
    assert_gradcheck(
        lambda x: AvgPool2d.apply(x, kernel_size=kernel, stride=stride),
        [rand(3, 7, 6, 2)],
        tol=TOL,
        what=f"avg pool kernel={kernel} stride={stride}",
    )


def test_global_avg_pool_forward_and_backward():
    x = rand(3, 4, 5, 2)  # (C, H, W, N) -> (N, C)
    assert_close(global_avg_pool2d(Tensor(x)).data, x.mean(axis=(1, 2)).T, what="global avg pool")
    assert_gradcheck(global_avg_pool2d, [x], tol=TOL, what="global avg pool")


@pytest.mark.parametrize(
    "module",
    [
        pytest.param(nn.MaxPool2d(2), marks=pytest.mark.exercise("maxpool")),
        pytest.param(nn.AvgPool2d(3, stride=2), marks=pytest.mark.exercise("avgpool")),
    ],
)
def test_pool_modules_backward(module):
    assert_gradcheck(module, [distinct(3, 6, 6, 2)], tol=TOL, what=type(module).__name__)


# ----- batch norm -----
# (N, D) features, statistics over axis 0; (C, H, W, N) feature maps, over axes 1, 2, 3
STATISTICS_AXES = {2: (0,), 4: (1, 2, 3)}


@pytest.mark.parametrize("shape", [(6, 4), (3, 2, 3, 4)])
def test_batchnorm_standardize_forward(shape):
    x = 3 + 2 * rand(*shape)
    axes = STATISTICS_AXES[len(shape)]
    expected = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(
        x.var(axis=axes, keepdims=True) + 1e-5
    )
    assert_close(BatchStandardize.apply(Tensor(x)).data, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(6, 4), (3, 2, 3, 4)])
def test_feature_mean_of_one_array_and_of_a_product(shape):
    x, y = rand(*shape), rand(*shape, seed=1)
    axes = STATISTICS_AXES[len(shape)]
    x_dev, y_dev = backend.to_device(x), backend.to_device(y)
    assert_close(feature_mean(x_dev), x.mean(axis=axes, keepdims=True), rtol=1e-12)
    assert_close(feature_mean(x_dev, y_dev), (x * y).mean(axis=axes, keepdims=True), rtol=1e-12)


def test_feature_mean_in_float32_over_a_full_size_batch():
    """131,072 values per channel, as in the first layer at batch 128: the float32 sums stay
    within 1e-6 of the float64 mean (a plain running sum in float32 is off by 4e-6 here)."""
    x = 3 + 2 * rand(8, 32, 32, 128)
    mean = feature_mean(backend.to_device(x.astype(np.float32)))
    assert_close(mean, x.mean(axis=(1, 2, 3), keepdims=True), rtol=1e-6, what="channel means")


@pytest.mark.exercise("batchnorm")
@pytest.mark.parametrize("shape", [(6, 4), (3, 2, 3, 4)])
def test_batchnorm_standardize_backward(shape):
    assert_gradcheck(
        BatchStandardize.apply, [3 + 2 * rand(*shape)], tol=TOL, what=f"standardize {shape}"
    )


@pytest.mark.exercise("batchnorm")
@pytest.mark.parametrize("shape, features", [((6, 4), 4), ((3, 2, 3, 4), 3)])
def test_batchnorm_op_backward(shape, features):
    """γ and β away from 1 and 0, so a gradient that forgets γ, or swaps dγ and dβ, shows."""
    assert_gradcheck(
        lambda x, gamma, beta: BatchNorm.apply(x, gamma, beta),
        [3 + 2 * rand(*shape), rand(features, seed=1), rand(features, seed=2)],
        tol=TOL,
        what=f"batch norm {shape}",
    )


def test_batchnorm_op_is_the_affine_map_of_the_standardisation():
    x, gamma, beta = 3 + 2 * rand(3, 2, 3, 4), rand(3, seed=1), rand(3, seed=2)
    expected = BatchStandardize.apply(Tensor(x)).numpy() * gamma[:, None, None, None]
    out = BatchNorm.apply(Tensor(x), Tensor(gamma), Tensor(beta)).numpy()
    assert_close(out, expected + beta[:, None, None, None], rtol=1e-12, atol=1e-12)


@pytest.mark.exercise("batchnorm")
@pytest.mark.parametrize(
    "layer, shape, features", [(nn.BatchNorm1d, (6, 4), 4), (nn.BatchNorm2d, (3, 2, 3, 4), 3)]
)
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_module_backward(layer, shape, features, affine, training):
    bn = layer(features, affine=affine).astype("float64")
    # Statistics and affine parameters away from their initial 0s and 1s, so a mix-up shows.
    bn.running_mean.data[...] = backend.to_device(rand(features, seed=1))
    bn.running_var.data[...] = backend.to_device(1 + rand(features, seed=2) ** 2)
    for seed, parameter in enumerate(bn.parameters(), start=3):
        parameter.data[...] = backend.to_device(rand(features, seed=seed))
    bn.train(training)
    assert_gradcheck(
        bn,
        [3 + 2 * rand(*shape)],
        params=bn.named_parameters(),
        tol=TOL,
        what=f"{layer.__name__} affine={affine} training={training}",
    )


# ----- linear -----
@pytest.mark.exercise("linear")
@pytest.mark.parametrize("bias", [True, False])
def test_linear_module_backward(bias):
    linear = nn.Linear(4, 3, bias=bias, rng=backend.rng(0)).astype("float64")
    assert_gradcheck(
        linear, [rand(5, 4)], params=linear.named_parameters(), tol=TOL, what="nn.Linear"
    )


@pytest.mark.exercise("linear")
def test_linear_forward_is_x_weight_plus_bias():
    linear = nn.Linear(4, 3, rng=backend.rng(0)).astype("float64")
    x = rand(5, 4)
    expected = x @ linear.weight.numpy() + linear.bias.numpy()
    assert_close(linear(Tensor(x)).data, expected, rtol=1e-12, what="linear forward")
