"""Checks that P processes compute what one process computes on the whole batch.

Run by tests/test_distributed.py as `mpiexec -n 2 python -m tests.mpi_checks NAME`, where NAME
is one of CHECKS. Every process draws the same whole batch (float64, one seed), then

1. computes the op on the whole batch alone, outside `whole_batch()`: the reference;
2. computes it on its own rows inside `whole_batch()`, backpropagates its rows of a random
   upstream gradient, and gathers every process's input gradients (and sums the parameters'
   with `sum_gradients`), which must equal the reference's within float64 summation error;
3. checks that distributed gradient against five-point central differences of the
   distributed function itself: each entry of the whole batch is perturbed in the process
   that holds it, and every process evaluates the op together.

With `--per-process` step 2 runs outside `whole_batch()`, each process on its own rows
alone: every check must then fail, which shows it can. Process 0 prints one line per check,
`name: ...` when it holds and `FAILED name: ...` when not (every process compares the same
numbers, so all stop at the same point); the exit status is 1 when any failed.
"""

import argparse
import sys

import numpy as np

from tinybt import backend, distributed, nn
from tinybt.gradcheck import relative_error
from tinybt.methods.barlow_twins import barlow_twins_loss
from tinybt.methods.byol import byol_loss
from tinybt.methods.common import cross_correlation
from tinybt.methods.simclr import nt_xent_loss
from tinybt.methods.vicreg import vicreg_loss, vicreg_terms
from tinybt.tensor import Tensor

SAME = 1e-12  # distributed vs one process: float64 sums taken in another order
GRADCHECK = 1e-7  # analytic vs central differences, as the single-process gradchecks
H = 1e-3


def embeddings(rng, n=8, d=4):
    """Two (n, d) views, columns of different spreads: VICReg's hinge σ < 1 holds for some
    columns and not for others, each well away from its kink at σ = 1."""
    scale = np.array([0.5, 2.0, 0.6, 1.8])[:d]
    return [rng.standard_normal((n, d)) * scale for _ in range(2)]


def batch_norm_layer(layer, rng):
    layer.astype("float64")
    layer.gamma.data[:] = backend.to_device(rng.uniform(0.5, 1.5, layer.gamma.shape))
    layer.beta.data[:] = backend.to_device(rng.standard_normal(layer.beta.shape))
    return layer


class Check:
    """An op under test: `inputs` (host arrays, whole batch), the axis of each that holds
    the batch, `build()` -> (fn of Tensors -> Tensor, {name: parameter}), whether the output
    is one row per sample (batch norm) or a scalar loss, and how many of the inputs, the
    first ones, get a gradient (BYOL's targets get none)."""

    def __init__(self, inputs, build, batch_axes=None, per_row=False, differentiable=None):
        self.inputs, self.build, self.per_row = inputs, build, per_row
        self.batch_axes = batch_axes or [0] * len(inputs)
        self.differentiable = len(inputs) if differentiable is None else differentiable


def checks(rng):
    """{name: Check} for every op made global."""
    z_a, z_b = embeddings(rng)
    targets = embeddings(rng)

    def layer_check(make, x, axis):
        state = batch_norm_layer(make(), rng).state_dict()

        def build():
            layer = make().astype("float64")
            layer.load_state_dict(state)
            return layer, dict(layer.named_parameters())

        return Check([x], build, [axis], per_row=True)

    def loss_check(loss, inputs=(z_a, z_b)):
        return Check(list(inputs), lambda: (loss, {}), differentiable=2)

    return {
        "batchnorm2d": layer_check(
            lambda: nn.BatchNorm2d(3), rng.standard_normal((3, 2, 2, 8)) * 2 + 1, axis=3
        ),
        "batchnorm1d": layer_check(lambda: nn.BatchNorm1d(4), rng.standard_normal((8, 4)), 0),
        "barlow_twins": loss_check(barlow_twins_loss),
        "barlow_twins_centred": loss_check(
            lambda a, b: barlow_twins_loss(a, b, standardized=False)
        ),
        "vicreg": loss_check(vicreg_loss),
        "simclr": loss_check(nt_xent_loss),
        "byol": loss_check(byol_loss, (z_a, z_b, *targets)),
    }


def own(array, axis):
    """This process's rows of a whole-batch host array, along `axis`: a view of it."""
    index = [slice(None)] * array.ndim
    index[axis] = distributed.batch_share(array.shape[axis])
    return array[tuple(index)]


def gather(array, axis):
    """Every process's rows of `array` (along `axis`) stacked, on the host."""
    with distributed.whole_batch():
        moved = np.moveaxis(backend.to_host(array), axis, 0)
        return np.moveaxis(backend.to_host(distributed.gather_batch(moved)), 0, axis)


def run(check, upstream, split, synchronised):
    """(output, [input gradients], {name: parameter gradient}, module) of the op on the
    inputs, each process's own rows when `split` (inside whole_batch() if `synchronised`)."""
    fn, params = check.build()
    arrays = [
        own(x, axis) if split else x for x, axis in zip(check.inputs, check.batch_axes, strict=True)
    ]
    tensors = [Tensor(backend.to_device(x), requires_grad=True) for x in arrays]
    grad = own(upstream, check.batch_axes[0]) if split and check.per_row else upstream
    if synchronised:
        with distributed.whole_batch():
            out = fn(*tensors)
            out.backward(backend.to_device(grad))
            distributed.sum_gradients(params.values())
    else:
        out = fn(*tensors)
        out.backward(backend.to_device(grad))
    grads = [backend.to_host(t.grad) for t in tensors[: check.differentiable]]
    if split:
        grads = [gather(g, axis) for g, axis in zip(grads, check.batch_axes, strict=False)]
    param_grads = {name: backend.to_host(p.grad) for name, p in params.items()}
    output = backend.to_host(out.data)
    if split and check.per_row:
        output = gather(output, check.batch_axes[0])
    return output, grads, param_grads, fn


def numerical_gradients(check, upstream):
    """Central differences of L = Σ output ⊙ upstream, the op run across the processes."""
    fn, _ = check.build()
    gradients = []
    for x in check.inputs[: check.differentiable]:
        gradient = np.zeros(x.shape)
        for j in np.ndindex(x.shape):
            original = x[j]
            values = []
            for step in (2 * H, H, -H, -2 * H):
                x[j] = original + step  # own() views x, so the process holding j sees it
                values.append(objective(check, fn, upstream))
            x[j] = original
            far_plus, plus, minus, far_minus = values
            gradient[j] = (8 * (plus - minus) - (far_plus - far_minus)) / (12 * H)
        gradients.append(gradient)
    return gradients


def objective(check, fn, upstream):
    """Σ output ⊙ upstream for the op run on each process's rows, the same on every process."""
    arrays = [own(x, axis) for x, axis in zip(check.inputs, check.batch_axes, strict=True)]
    with distributed.whole_batch():
        out = fn(*[Tensor(backend.to_device(x)) for x in arrays]).data
        if not check.per_row:  # a loss: the same number on every process already
            return float((out * backend.to_device(upstream)).sum())
        grad = backend.to_device(own(upstream, check.batch_axes[0]))
        return float(distributed.sum_over_processes((out * grad).sum()))


def worst(actual, expected):
    """The largest relative error between two host arrays (gradcheck's definition)."""
    tiny = max(1e-4 * float((np.abs(actual) + np.abs(expected)).max(initial=0.0)), 1e-12)
    return float(relative_error(actual, expected, tiny).max(initial=0.0))


def compare(what, actual, expected, tolerance):
    error = worst(np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64))
    if not error < tolerance:
        raise AssertionError(f"{what}: relative error {error:.1e} > {tolerance:.0e}")
    return error


def run_check(name, synchronised=True):
    """(largest error against one process, largest against central differences)."""
    rng = np.random.default_rng(0)  # the same whole batch on every process
    check = checks(rng)[name]
    out_shape = check.inputs[0].shape if check.per_row else ()
    upstream = np.random.default_rng(1).standard_normal(out_shape)
    output, grads, param_grads, module = run(check, upstream, split=False, synchronised=False)
    pairs = {"output": (output, None), **{f"d/dinput{i}": (g, i) for i, g in enumerate(grads)}}
    pairs.update({f"d/d{name}": (g, name) for name, g in param_grads.items()})
    if check.per_row:  # the running statistics: the whole batch's, with its count
        pairs.update({b: (getattr(module, b).data, b) for b in ("running_mean", "running_var")})
    shared = run(check, upstream, split=True, synchronised=synchronised)
    got = {"output": shared[0], **{f"d/dinput{i}": g for i, g in enumerate(shared[1])}}
    got.update({f"d/d{name}": g for name, g in shared[2].items()})
    if check.per_row:
        got.update({b: getattr(shared[3], b).data for b in ("running_mean", "running_var")})
    same = max(
        compare(f"{name} {what}", backend.to_host(got[what]), backend.to_host(want), SAME)
        for what, (want, _) in pairs.items()
    )
    numerical = max(
        compare(f"{name} d/dinput{i} numerically", shared[1][i], gradient, GRADCHECK)
        for i, gradient in enumerate(numerical_gradients(check, upstream))
    )
    return same, numerical


def logged_statistics():
    """What training logs (C, VICReg's terms) from each process's rows equals the whole
    batch's."""
    z_a, z_b = embeddings(np.random.default_rng(0))
    with distributed.whole_batch():
        c = backend.to_host(cross_correlation(own(z_a, 0), own(z_b, 0)))
        terms = vicreg_terms(backend.to_device(own(z_a, 0)), backend.to_device(own(z_b, 0)))
    compare("C", c, backend.to_host(cross_correlation(z_a, z_b)), SAME)
    compare("VICReg's terms", terms, vicreg_terms(z_a, z_b), SAME)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="*", help="checks to run (default: all)")
    parser.add_argument("--per-process", action="store_true", help="statistics not synchronised")
    args = parser.parse_args()
    if distributed.size() < 2:
        sys.exit("run under mpiexec -n 2 or more")
    names = args.names or list(checks(np.random.default_rng(0)))
    failed = False
    for name in names:
        try:
            same, numerical = run_check(name, synchronised=not args.per_process)
            line = f"{name}: vs one process {same:.1e}, vs central differences {numerical:.1e}"
        except AssertionError as error:
            failed, line = True, f"FAILED {error}"
        if distributed.rank() == 0:
            print(line, flush=True)
    if not args.names:
        logged_statistics()
        if distributed.rank() == 0:
            print("logged statistics: C and VICReg's terms equal the whole batch's")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
