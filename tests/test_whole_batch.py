"""The ops with batch statistics or a batch mean, run as P processes that share one batch.

In a run of P processes (tinybt.distributed) each process holds N / P rows of the batch and
its ops take the whole batch's statistics through the library's sums. Two counts are then in
play, and a formula's N or m can mean either: the whole batch's (`distributed.batch_count`),
by which every mean over the batch divides, and this process's (its rows, `len(z)`, or batch
norm's `self.count`), by which a process scales its share of a parameter's gradient, the
shares being added up afterwards (`distributed.sum_gradients`). In one process the two are
the same number, so the gradient checks of the other test files cannot tell them apart.
These tests can: P threads play the P processes (tests/processes.py), each op runs on each
process's rows, and what the processes return is compared with the same op run on the whole
batch in one process, with a message that names the count meant when a gradient is off by
the factor P.
"""

import numpy as np
import pytest

from tinybt.methods.barlow_twins import BarlowTwinsLoss
from tinybt.methods.byol import BYOLLoss
from tinybt.methods.simclr import NTXentLoss
from tinybt.methods.simsiam import SimSiamLoss
from tinybt.methods.vicreg import VICRegLoss
from tinybt.ops.batchnorm import BatchNorm, BatchStandardize, feature_axis

from .processes import Threads, ratio, split

PROCESSES = [2, 4]


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def assert_matches(got, expected, what, off_by_processes):
    """got == expected to float64 rounding; `off_by_processes` says which count was meant,
    for when got is expected times P or 1/P (the two counts' ratio)."""
    if np.allclose(got, expected, rtol=1e-9, atol=1e-12):
        return
    factor = ratio(got, expected)
    error = float(np.max(np.abs(got - expected)))
    message = f"{what}: max error {error:.3g} against the whole batch run in one process"
    for processes, (count_meant, told) in off_by_processes.items():
        if np.isclose(factor, processes, rtol=1e-6) or np.isclose(factor, 1 / processes, 1e-6):
            message = f"{what}: {factor:.3g} times the right value: {count_meant} ({told})"
    raise AssertionError(message)


def losses_in_processes(monkeypatch, op_class, views, processes, needs_grad, **options):
    """(loss, [dL/dview]) of the whole batch in one process, and [(loss, grads)] of each of
    `processes` processes holding its rows of every view."""

    def loss_and_grads(*arrays):
        op = op_class()
        op.needs_grad = needs_grad or (True,) * len(arrays)
        loss = op.forward(*arrays, **options)
        return float(loss), op.backward(np.float64(1.0))

    whole = loss_and_grads(*views)
    shares = [split(view, processes) for view in views]
    return whole, Threads(processes).run(monkeypatch, loss_and_grads, *shares)


def check_loss(monkeypatch, op_class, views, processes, name, needs_grad=None, **options):
    """The loss op on each process's rows against the whole batch's: the same loss on every
    process, and each process's gradient the whole batch's at its rows. needs_grad: which
    inputs get a gradient (all, by default)."""
    (loss, grads), per_process = losses_in_processes(
        monkeypatch, op_class, views, processes, needs_grad, **options
    )
    n = len(views[0])
    meant = {
        processes: (
            f"a mean over the batch divides by the whole batch's count, N = {n} rows "
            f"(distributed.batch_count), not by this process's {n // processes} rows",
            f"{processes} processes",
        )
    }
    for rank, (process_loss, process_grads) in enumerate(per_process):
        assert np.isclose(process_loss, loss, rtol=1e-10), (
            f"{name} forward on process {rank} of {processes}: {process_loss} is not the "
            f"whole batch's loss {loss}"
        )
        for i, (got, whole) in enumerate(zip(process_grads, grads, strict=True)):
            if whole is None:
                continue
            assert_matches(
                got,
                split(whole, processes)[rank],
                f"{name} backward, {processes} processes: dL/dinput{i} of process {rank}'s rows",
                meant,
            )


def views(n, d, seed=0):
    shared = rand(n, d, seed=seed)  # correlated views, as a trained network gives
    return [shared + 0.5 * rand(n, d, seed=seed + 1), shared + 0.5 * rand(n, d, seed=seed + 2)]


@pytest.mark.exercise("bt-loss")
@pytest.mark.parametrize("processes", PROCESSES)
@pytest.mark.parametrize("standardized", [True, False])
def test_barlow_twins_loss_with_the_batch_shared(monkeypatch, processes, standardized):
    check_loss(
        monkeypatch,
        BarlowTwinsLoss,
        views(16, 6),
        processes,
        "Barlow Twins loss",
        lambd=0.3,
        standardized=standardized,
    )


@pytest.mark.exercise("nt-xent")
@pytest.mark.parametrize("processes", PROCESSES)
def test_nt_xent_with_the_batch_shared(monkeypatch, processes):
    check_loss(monkeypatch, NTXentLoss, views(8, 5), processes, "NT-Xent", temperature=0.5)


@pytest.mark.exercise("vicreg")
@pytest.mark.parametrize("processes", PROCESSES)
def test_vicreg_with_the_batch_shared(monkeypatch, processes):
    # one view's spread below the hinge's γ = 1 in some dimensions, so the variance term acts
    z_a, z_b = views(16, 6, seed=3)
    check_loss(monkeypatch, VICRegLoss, [z_a, 0.5 * z_b], processes, "VICReg")


@pytest.mark.parametrize("processes", PROCESSES)
def test_byol_loss_with_the_batch_shared(monkeypatch, processes):
    predictions, targets = views(8, 5, seed=4), views(8, 5, seed=7)
    check_loss(
        monkeypatch,
        BYOLLoss,
        [*predictions, *targets],
        processes,
        "BYOL loss",
        needs_grad=(True, True, False, False),  # the targets are constants
    )


@pytest.mark.parametrize("processes", PROCESSES)
def test_simsiam_loss_with_the_batch_shared(monkeypatch, processes):
    predictions, embeddings = views(8, 5, seed=5), views(8, 5, seed=8)
    check_loss(
        monkeypatch,
        SimSiamLoss,
        [*predictions, *embeddings],
        processes,
        "SimSiam loss",
        needs_grad=(True, True, False, False),  # the embeddings are behind the stop-gradient
    )


# ----- batch norm: the batch is axis 0 of (N, D), the last axis of (C, H, W, N) -----
SHAPES = [(8, 4), (3, 2, 3, 8)]


def batch_axis(shape):
    return 0 if len(shape) == 2 else -1


@pytest.mark.exercise("batchnorm")
@pytest.mark.parametrize("processes", PROCESSES)
@pytest.mark.parametrize("shape", SHAPES)
def test_batch_standardize_with_the_batch_shared(monkeypatch, processes, shape):
    x, grad = 3 + 2 * rand(*shape), rand(*shape, seed=1)
    axis = batch_axis(shape)

    def standardize(x, grad):
        op = BatchStandardize()
        return op.forward(x), op.backward(grad)[0]

    x_hat, dx = standardize(x, grad)
    shares = Threads(processes).run(
        monkeypatch, standardize, split(x, processes, axis), split(grad, processes, axis)
    )
    m = x.size // x.shape[feature_axis(x)]  # values per feature in the whole batch
    meant = {
        processes: (
            f"the means over a feature's values divide by the whole batch's count, m = {m} "
            f"(feature_mean does), not by this process's {m // processes}",
            f"{processes} processes",
        )
    }
    for rank, (process_x_hat, process_dx) in enumerate(shares):
        assert np.allclose(process_x_hat, split(x_hat, processes, axis)[rank], rtol=1e-10)
        where = f"batch standardisation {shape}, {processes} processes: dL/dx of process {rank}"
        assert_matches(process_dx, split(dx, processes, axis)[rank], where, meant)


@pytest.mark.exercise("batchnorm")
@pytest.mark.parametrize("processes", PROCESSES)
@pytest.mark.parametrize("shape", SHAPES)
def test_batchnorm_with_the_batch_shared(monkeypatch, processes, shape):
    """Each process returns its share of dL/dγ and dL/dβ; summed over the processes, as
    distributed.sum_gradients sums them, they must give the whole batch's."""
    axis = batch_axis(shape)
    features = shape[1] if len(shape) == 2 else shape[0]
    x, grad = 3 + 2 * rand(*shape), rand(*shape, seed=1)
    gamma, beta = rand(features, seed=2), rand(features, seed=3)

    def batchnorm(x, grad):
        op = BatchNorm()
        op.forward(x, gamma, beta)
        return op.backward(grad)

    dx, dgamma, dbeta = batchnorm(x, grad)
    shares = Threads(processes).run(
        monkeypatch, batchnorm, split(x, processes, axis), split(grad, processes, axis)
    )
    m = x.size // features
    for rank, (process_dx, _, _) in enumerate(shares):
        assert_matches(
            process_dx,
            split(dx, processes, axis)[rank],
            f"batch norm {shape}, {processes} processes: dL/dx of process {rank}",
            {},
        )
    meant = {
        processes: (
            "each process returns its own share of the sum over the batch, the means times "
            f"this process's count (self.count, m / P = {m // processes} values per feature), "
            f"not the whole batch's (self.batch_count, m = {m}): the {processes} shares are "
            "added up over the processes",
            f"{processes} processes",
        )
    }
    for name, whole, index in (("dL/dgamma", dgamma, 1), ("dL/dbeta", dbeta, 2)):
        summed = sum(share[index] for share in shares)
        where = f"batch norm {shape}: {name} summed over the {processes} processes"
        assert_matches(summed, whole, where, meant)
