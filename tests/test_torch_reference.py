"""Forward and backward against PyTorch, with identical inputs, weights and upstream gradients.

float64 must agree to rounding (1e-10); float32 to what its 7 digits allow. Skipped where
torch is not installed; the library itself never imports it. tinybt's 2-D layers take
(C, H, W, N) feature maps, torch's (N, C, H, W): `batch_last` and `batch_first` permute
around ours, as Tensor transposes, so the comparisons (gradients included) are in torch's
layout.
"""

import numpy as np
import pytest

from tinybt import backend, nn, ops
from tinybt.tensor import Tensor

from .conftest import assert_close

torch = pytest.importorskip("torch")
F = torch.nn.functional

TOLERANCES = {"float64": dict(rtol=1e-10, atol=1e-10), "float32": dict(rtol=1e-4, atol=1e-5)}
DTYPES = list(TOLERANCES)


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def batch_last(x):
    """(N, C, H, W) Tensor -> (C, H, W, N), the layout of tinybt's 2-D layers."""
    return x.transpose(1, 2, 3, 0)


def batch_first(x):
    """(C, H, W, N) Tensor -> (N, C, H, W)."""
    return x.transpose(3, 0, 1, 2)


def both(array, dtype):
    """The same values as a tinybt Tensor and a torch tensor, both requiring gradients."""
    array = np.asarray(array, dtype=dtype)
    return Tensor(array, requires_grad=True), torch.tensor(array, requires_grad=True)


def run_backward(ours, theirs, seed=99):
    """Backward from the same random upstream gradient through both outputs."""
    upstream = rand(*theirs.shape, seed=seed).astype(str(theirs.dtype).removeprefix("torch."))
    ours.backward(upstream)
    theirs.backward(torch.from_numpy(upstream))


def check(ours, theirs, dtype, what):
    """Compare a tinybt array (any backend) with a torch tensor."""
    assert_close(ours, theirs.detach().numpy(), **TOLERANCES[dtype], what=what)


def compare_functions(ours_fn, torch_fn, arrays, dtype, what):
    """Run both functions on `arrays`, backward, and compare the output and every gradient."""
    pairs = [both(a, dtype) for a in arrays]
    out = ours_fn(*(ours for ours, _ in pairs))
    expected = torch_fn(*(theirs for _, theirs in pairs))
    run_backward(out, expected)
    check(out.data, expected, dtype, f"{what}: forward")
    for i, (ours, theirs) in enumerate(pairs):
        check(ours.grad, theirs.grad, dtype, f"{what}: d/dinput{i}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stride, padding", [(1, 0), (1, 1), (2, 0), (2, 1)])
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_matches_torch(dtype, stride, padding, bias):
    arrays = [rand(4, 3, 9, 8), rand(5, 3, 3, 3, seed=1)] + ([rand(5, seed=2)] if bias else [])
    compare_functions(
        lambda x, *w: batch_first(
            ops.Conv2d.apply(batch_last(x), *w, stride=stride, padding=padding)
        ),
        lambda *t: F.conv2d(*t, stride=stride, padding=padding),
        arrays,
        dtype,
        f"conv2d stride={stride} padding={padding} bias={bias}",
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel, stride", [(2, 2), (3, 2), (3, 1)])
def test_pooling_matches_torch(dtype, kernel, stride):
    # distinct values: with ties the two libraries could route max pooling's gradient apart
    x = np.random.default_rng(0).permutation(2 * 3 * 7 * 8).reshape(2, 3, 7, 8) / 100
    compare_functions(
        lambda t: batch_first(
            ops.MaxPool2d.apply(batch_last(t), kernel_size=kernel, stride=stride)
        ),
        lambda t: F.max_pool2d(t, kernel, stride),
        [x],
        dtype,
        f"max pool kernel={kernel} stride={stride}",
    )
    compare_functions(
        lambda t: batch_first(
            ops.AvgPool2d.apply(batch_last(t), kernel_size=kernel, stride=stride)
        ),
        lambda t: F.avg_pool2d(t, kernel, stride),
        [x],
        dtype,
        f"avg pool kernel={kernel} stride={stride}",
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_global_avg_pool_matches_torch(dtype):
    compare_functions(
        lambda t: ops.global_avg_pool2d(batch_last(t)),  # (N, C) either way
        lambda t: F.adaptive_avg_pool2d(t, 1).flatten(1),
        [rand(2, 3, 5, 4)],
        dtype,
        "global avg pool",
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(dtype, bias):
    ours = nn.Linear(5, 3, bias=bias, rng=backend.rng(0)).astype(dtype)
    theirs = torch.nn.Linear(5, 3, bias=bias).to(getattr(torch, dtype))
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(ours.weight.numpy().T))  # ours is (in, out)
        if bias:
            theirs.bias.copy_(torch.from_numpy(ours.bias.numpy()))
    x, x_torch = both(rand(6, 5), dtype)
    out, expected = ours(x), theirs(x_torch)
    run_backward(out, expected)
    check(out.data, expected, dtype, "linear: forward")
    check(x.grad, x_torch.grad, dtype, "linear: d/dx")
    check(ours.weight.grad.T, theirs.weight.grad, dtype, "linear: d/dweight")
    if bias:
        check(ours.bias.grad, theirs.bias.grad, dtype, "linear: d/dbias")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "layer, torch_layer, shape",
    [
        (nn.BatchNorm1d, torch.nn.BatchNorm1d, (8, 5)),
        (nn.BatchNorm2d, torch.nn.BatchNorm2d, (4, 5, 3, 2)),
    ],
)
@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm_matches_torch_in_training_then_eval(dtype, layer, torch_layer, shape, affine):
    ours = layer(shape[1], affine=affine).astype(dtype)
    theirs = torch_layer(shape[1], affine=affine).to(getattr(torch, dtype))
    if affine:
        with torch.no_grad():
            for seed, (ours_p, theirs_p) in enumerate(
                [(ours.gamma, theirs.weight), (ours.beta, theirs.bias)], start=1
            ):
                ours_p.data[...] = backend.to_device(rand(shape[1], seed=seed))
                theirs_p.copy_(torch.from_numpy(rand(shape[1], seed=seed)))

    for mode in ("train", "eval"):  # eval uses the running statistics the training step left
        getattr(ours, mode)()
        getattr(theirs, mode)()
        x, x_torch = both(3 + 2 * rand(*shape, seed=7), dtype)
        out = batch_first(ours(batch_last(x))) if x.ndim == 4 else ours(x)
        expected = theirs(x_torch)
        run_backward(out, expected)
        what = f"{layer.__name__} {mode} affine={affine}"
        check(out.data, expected, dtype, f"{what}: forward")
        check(x.grad, x_torch.grad, dtype, f"{what}: d/dx")
        check(ours.running_mean.data, theirs.running_mean, dtype, f"{what}: running mean")
        check(ours.running_var.data, theirs.running_var, dtype, f"{what}: running var")
        if affine:
            check(ours.gamma.grad, theirs.weight.grad, dtype, f"{what}: d/dgamma")
            check(ours.beta.grad, theirs.bias.grad, dtype, f"{what}: d/dbeta")
            ours.zero_grad()
            theirs.zero_grad()
