"""The other methods' losses (SimCLR, VICReg, BYOL) and BYOL's EMA: each hand-derived op
against central differences, against its autograd composition, and on values known by hand.
(The PyTorch comparisons are in test_torch_methods.py.)"""

import math

import numpy as np
import pytest

from tinybt import backend
from tinybt.gradcheck import assert_gradcheck
from tinybt.methods.byol import byol_loss, byol_loss_autograd
from tinybt.methods.predictor import predictor
from tinybt.methods.simclr import TEMPERATURE, nt_xent_loss, nt_xent_loss_autograd
from tinybt.methods.simsiam import SimSiamLoss, simsiam_loss, simsiam_loss_autograd
from tinybt.methods.target import TAU_BASE, ema_tau, ema_update
from tinybt.methods.vicreg import (
    COV_COEFF,
    EPS,
    SIM_COEFF,
    STD_COEFF,
    vicreg_loss,
    vicreg_loss_autograd,
    vicreg_terms,
)
from tinybt.nn import Parameter
from tinybt.tensor import Tensor

from .conftest import assert_close

TOL = 1e-6
SHAPES = [(8, 3), (4, 10), (16, 16)]  # includes N < D, as with a 512-d projector at batch 256
# Per-dimension scales that put every standard deviation well clear of VICReg's hinge at γ = 1
# (a finite difference across the kink would not match either one-sided derivative).
SCALES = np.array([0.3, 2.5, 0.6, 1.8])


def embeddings(n, d, seed=0):
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal((n, d))  # correlated views, as a trained network gives
    return shared + 0.5 * rng.standard_normal((n, d)), shared + 0.5 * rng.standard_normal((n, d))


def vicreg_embeddings(n, d, seed=0):
    """Views whose dimensions have spreads on both sides of γ = 1, none near it."""
    scales = np.resize(SCALES, d)
    z_a, z_b = embeddings(n, d, seed)
    return z_a * scales, z_b * scales


def both_ways(loss_fn, reference_fn, arrays):
    """(loss, gradients) from the hand-derived op and from the composition, same inputs."""
    results = []
    for fn in (loss_fn, reference_fn):
        tensors = [Tensor(a, requires_grad=True) for a in arrays]
        loss = fn(*tensors)
        loss.backward()
        results.append((loss.data, [t.grad for t in tensors]))
    return results


def assert_same(results, what):
    (loss, grads), (expected_loss, expected_grads) = results
    assert_close(loss, expected_loss, rtol=1e-10, atol=1e-12, what=f"{what}: loss")
    for i, (grad, expected) in enumerate(zip(grads, expected_grads, strict=True)):
        assert_close(grad, expected, rtol=1e-9, atol=1e-12, what=f"{what}: d/dinput{i}")


# ----- SimCLR -----
@pytest.mark.exercise("nt-xent")
@pytest.mark.parametrize("n, d", SHAPES)
@pytest.mark.parametrize("temperature", [0.5, 0.1])
def test_nt_xent_backward(n, d, temperature):
    assert_gradcheck(
        lambda Z_a, Z_b: nt_xent_loss(Z_a, Z_b, temperature=temperature),
        list(embeddings(n, d)),
        tol=TOL,
        what=f"NT-Xent N={n} D={d} τ={temperature}",
    )


@pytest.mark.parametrize("n, d", SHAPES)
@pytest.mark.parametrize("temperature", [0.5, 0.1])
def test_nt_xent_op_matches_autograd_composition(n, d, temperature):
    results = both_ways(
        lambda a, b: nt_xent_loss(a, b, temperature),
        lambda a, b: nt_xent_loss_autograd(a, b, temperature),
        embeddings(n, d, seed=1),
    )
    assert_same(results, f"NT-Xent N={n} D={d}")


def test_nt_xent_composition_passes_gradcheck():
    assert_gradcheck(nt_xent_loss_autograd, list(embeddings(4, 10, seed=2)), tol=TOL)


def test_nt_xent_of_aligned_orthogonal_pairs():
    # Each image's two views identical, different images orthogonal: every view's twin has
    # similarity 1/τ, its 2N - 2 negatives 0, so ℓ = -1/τ + log(e^{1/τ} + 2N - 2) for every view.
    n, temperature = 4, 0.5
    z = np.eye(n, 6) * np.arange(1.0, n + 1)[:, None]  # scales must not matter (cosines)
    loss = nt_xent_loss(Tensor(z), Tensor(z), temperature=temperature).item()
    expected = -1 / temperature + math.log(math.exp(1 / temperature) + 2 * n - 2)
    assert loss == pytest.approx(expected, rel=1e-12)
    # with random embeddings the loss is far higher: the twin is hardly more similar
    z_a, z_b = np.random.default_rng(0).standard_normal((2, n, 6))
    assert nt_xent_loss(Tensor(z_a), Tensor(z_b), temperature=temperature).item() > loss + 1


def test_nt_xent_is_stable_at_a_tiny_temperature():
    # similarities / τ up to 1e4: exp would overflow without subtracting each row's maximum
    z_a, z_b = embeddings(8, 5, seed=4)
    loss = nt_xent_loss(Tensor(z_a), Tensor(z_b), temperature=1e-4)
    assert np.isfinite(loss.item())


def test_nt_xent_default_temperature():
    assert TEMPERATURE == 0.5  # the official README's CIFAR-10 setting


# ----- VICReg -----
@pytest.mark.exercise("vicreg")
@pytest.mark.parametrize("n, d", SHAPES)
@pytest.mark.parametrize("coeffs", [(SIM_COEFF, STD_COEFF, COV_COEFF), (0.3, 1.7, 2.9)])
def test_vicreg_backward(n, d, coeffs):
    sim, std, cov = coeffs
    assert_gradcheck(
        lambda Z_a, Z_b: vicreg_loss(Z_a, Z_b, sim_coeff=sim, std_coeff=std, cov_coeff=cov),
        list(vicreg_embeddings(n, d)),
        tol=TOL,
        what=f"VICReg N={n} D={d} coefficients {coeffs}",
    )


@pytest.mark.parametrize("n, d", SHAPES)
def test_vicreg_op_matches_autograd_composition(n, d):
    results = both_ways(vicreg_loss, vicreg_loss_autograd, vicreg_embeddings(n, d, seed=1))
    assert_same(results, f"VICReg N={n} D={d}")


def test_vicreg_composition_passes_gradcheck():
    assert_gradcheck(vicreg_loss_autograd, list(vicreg_embeddings(4, 10, seed=2)), tol=TOL)


def test_vicreg_op_keeps_its_terms_and_they_add_up():
    z_a, z_b = vicreg_embeddings(16, 6, seed=3)
    loss = vicreg_loss(Tensor(z_a, requires_grad=True), Tensor(z_b))
    op = loss._fn
    terms = vicreg_terms(z_a, z_b)
    assert (op.invariance, op.variance, op.covariance) == pytest.approx(terms, rel=1e-12)
    weighted = SIM_COEFF * terms[0] + STD_COEFF * terms[1] + COV_COEFF * terms[2]
    assert loss.item() == pytest.approx(weighted, rel=1e-12)


def test_vicreg_identical_views_have_zero_invariance():
    z, _ = vicreg_embeddings(8, 4)
    invariance, variance, covariance = vicreg_terms(z, z)
    assert invariance == 0.0 and variance > 0 and covariance > 0


def test_vicreg_terms_by_hand():
    # N = 4, D = 2; columns (a, -a, a, -a)-like so everything is computable on paper.
    # View a: column 0 = (2, -2, 2, -2), column 1 = (1, 1, -1, -1): orthogonal, zero mean.
    z_a = np.array([[2.0, 1.0], [-2.0, 1.0], [2.0, -1.0], [-2.0, -1.0]])
    z_b = z_a * [1.0, 0.5]
    invariance, variance, covariance = vicreg_terms(z_a, z_b, eps=0.0)
    # invariance: only column 1 differs, by ±0.5: Σ = 4 · 0.25 = 1 over N D = 8
    assert invariance == pytest.approx(1 / 8)
    # Var (N - 1 = 3): view a 16/3 and 4/3, both σ > 1; view b 16/3 and 1/3 (σ = 0.577)
    hinge_b = (1 - math.sqrt(1 / 3)) / 2  # mean over D = 2
    assert variance == pytest.approx(hinge_b / 2)  # mean over the two views
    # the two columns are orthogonal in each view: no covariance
    assert covariance == pytest.approx(0.0, abs=1e-15)


def test_vicreg_covariance_is_divided_by_n_minus_1_and_d():
    # two identical columns: K_01 = K_10 = Var = Σ x² / (N - 1); c = 2 K_01² / D per view
    x = np.array([1.0, -1.0, 3.0, -3.0])
    z = np.stack([x, x], axis=1)
    var = (x**2).sum() / 3
    assert vicreg_terms(z, z)[2] == pytest.approx(2 * (2 * var**2 / 2))


def test_vicreg_defaults_are_the_official_codes():
    assert (SIM_COEFF, STD_COEFF, COV_COEFF, EPS) == (25.0, 25.0, 1.0, 1e-4)


# ----- BYOL -----
@pytest.mark.parametrize("n, d", SHAPES)
def test_byol_backward(n, d):
    q_a, q_b = embeddings(n, d)
    target_a, target_b = (Tensor(t) for t in embeddings(n, d, seed=5))
    assert_gradcheck(
        lambda a, b: byol_loss(a, b, target_a, target_b),
        [q_a, q_b],
        tol=TOL,
        what=f"BYOL loss N={n} D={d}",
    )


@pytest.mark.parametrize("n, d", SHAPES)
def test_byol_op_matches_autograd_composition(n, d):
    arrays = (*embeddings(n, d, seed=1), *embeddings(n, d, seed=6))
    results = both_ways(byol_loss, byol_loss_autograd, arrays)
    (loss, grads), (expected_loss, expected_grads) = results
    assert_close(loss, expected_loss, rtol=1e-10, what="BYOL: loss")
    for i in range(2):
        assert_close(grads[i], expected_grads[i], rtol=1e-9, atol=1e-12, what=f"BYOL d/dq{i}")
    assert grads[2:] == [None, None] and expected_grads[2:] == [None, None]


def test_no_gradient_reaches_byols_target():
    q_a, q_b = (Tensor(a, requires_grad=True) for a in embeddings(6, 4))
    targets = [Tensor(a, requires_grad=True) for a in embeddings(6, 4, seed=7)]
    byol_loss(q_a, q_b, *targets).backward()
    assert q_a.grad is not None and q_b.grad is not None
    assert all(t.grad is None for t in targets)


def test_byol_op_refuses_targets_that_require_grad():
    from tinybt.methods.byol import BYOLLoss

    arrays = [Tensor(a, requires_grad=True) for a in (*embeddings(4, 3), *embeddings(4, 3, 1))]
    with pytest.raises(RuntimeError, match="stop-gradient"):
        BYOLLoss.apply(*arrays).backward()


def test_byol_loss_known_values():
    q = np.random.default_rng(0).standard_normal((5, 4))
    # q = z' (up to a positive scale): cos = 1, loss 0; q = -z': cos = -1, 4 per direction
    assert byol_loss(Tensor(q), Tensor(q), Tensor(3 * q), Tensor(q)).item() == pytest.approx(0)
    assert byol_loss(Tensor(q), Tensor(q), Tensor(-q), Tensor(-q)).item() == pytest.approx(8)


def test_ema_update_against_a_hand_written_one():
    rng = np.random.default_rng(0)
    online = [Parameter(rng.standard_normal(shape)) for shape in [(3, 4), (4,), (2, 2, 3)]]
    target = [Parameter(rng.standard_normal(p.shape)) for p in online]
    before = [backend.to_host(p.data).copy() for p in target]
    arrays = [t.data for t in target]  # the update must be in place: same arrays afterwards
    tau = 0.9
    ema_update(target, online, tau)
    for t, array, old, o in zip(target, arrays, before, online, strict=True):
        assert t.data is array
        expected = np.empty_like(old)
        for index in np.ndindex(old.shape):  # θ' <- τ θ' + (1 - τ) θ, one entry at a time
            expected[index] = tau * old[index] + (1 - tau) * backend.to_host(o.data)[index]
        assert_close(t.data, expected, rtol=1e-12)


def test_ema_update_with_tau_0_copies_and_refuses_mismatched_networks():
    online, target = [Parameter(np.ones((2, 3)))], [Parameter(np.zeros((2, 3)))]
    ema_update(target, online, 0.0)
    assert_close(target[0].data, np.ones((2, 3)))
    with pytest.raises(ValueError, match="shape"):
        ema_update([Parameter(np.zeros((3, 2)))], online, 0.5)
    with pytest.raises(ValueError, match="same architecture"):
        ema_update(target + target, online, 0.5)


def test_ema_tau_schedule():
    total = 1000
    assert ema_tau(0, total) == pytest.approx(TAU_BASE) and TAU_BASE == 0.996
    assert ema_tau(total, total) == pytest.approx(1.0)
    assert ema_tau(total // 2, total) == pytest.approx((1 + TAU_BASE) / 2)
    taus = [ema_tau(k, total) for k in range(total + 1)]
    assert all(a <= b for a, b in zip(taus, taus[1:], strict=False))  # rises monotonically


def test_predictor_shape():
    net = predictor(8, 16, rng=np.random.default_rng(0))
    out = net(Tensor(np.random.default_rng(1).standard_normal((5, 8)).astype(np.float32)))
    assert out.shape == (5, 8)
    assert [tuple(p.shape) for p in net.parameters()] == [(8, 16), (16,), (16,), (16, 8), (8,)]


def test_ema_update_on_raw_arrays_updates_them_in_place():
    """Raw arrays are taken as they are: an ndarray's own `.data` is its memory buffer."""
    target, online = [np.zeros((2, 3)), np.zeros(4)], [np.ones((2, 3)), np.full(4, 2.0)]
    ema_update(target, online, 0.75)
    assert_close(target[0], np.full((2, 3), 0.25))
    assert_close(target[1], np.full(4, 0.5))


@pytest.mark.parametrize(
    "loss, autograd",
    [
        (lambda z_a, z_b: nt_xent_loss(z_a, z_b), lambda z_a, z_b: nt_xent_loss_autograd(z_a, z_b)),
        (
            lambda z_a, z_b: byol_loss(z_a, z_b, z_b, z_a),
            lambda z_a, z_b: byol_loss_autograd(z_a, z_b, z_b, z_a),
        ),
    ],
    ids=["nt-xent", "byol"],
)
def test_a_zero_embedding_gives_no_nan(loss, autograd):
    """The squared norm is floored at 1e-12 (DeepMind's BYOL): a zero row's unit vector is 0,
    the loss and every gradient finite, and the op still agrees with its composition."""
    z_a, z_b = embeddings(6, 4)
    z_a[2] = 0.0
    values, grads = [], []
    for function in (loss, autograd):
        a, b = Tensor(z_a, requires_grad=True), Tensor(z_b, requires_grad=True)
        out = function(a, b)
        out.backward()
        values.append(out.item())
        grads.append((backend.to_host(a.grad), backend.to_host(b.grad)))
    assert np.isfinite(values).all()
    assert all(np.isfinite(g).all() for pair in grads for g in pair)
    assert values[0] == pytest.approx(values[1], rel=1e-9)
    for op_grad, autograd_grad in zip(grads[0], grads[1], strict=True):
        assert_close(op_grad, autograd_grad, rtol=1e-6, atol=1e-9)


# ----- SimSiam -----
@pytest.mark.parametrize("n, d", SHAPES)
def test_simsiam_backward(n, d):
    p_a, p_b = embeddings(n, d)
    z_a, z_b = (Tensor(z) for z in embeddings(n, d, seed=5))
    assert_gradcheck(
        lambda a, b: simsiam_loss(a, b, z_a, z_b), [p_a, p_b], tol=TOL, what=f"SimSiam N={n} D={d}"
    )


@pytest.mark.parametrize("n, d", SHAPES)
def test_simsiam_op_matches_autograd_composition(n, d):
    arrays = (*embeddings(n, d, seed=1), *embeddings(n, d, seed=6))
    (loss, grads), (expected_loss, expected_grads) = both_ways(
        simsiam_loss, simsiam_loss_autograd, arrays
    )
    assert_close(loss, expected_loss, rtol=1e-10, what="SimSiam: loss")
    for i in range(2):
        assert_close(grads[i], expected_grads[i], rtol=1e-9, atol=1e-12, what=f"SimSiam d/dp{i}")
    assert grads[2:] == [None, None] and expected_grads[2:] == [None, None]


def test_simsiam_stops_the_gradient_to_the_embeddings():
    p_a, p_b = (Tensor(a, requires_grad=True) for a in embeddings(6, 4))
    z = [Tensor(a, requires_grad=True) for a in embeddings(6, 4, seed=7)]
    simsiam_loss(p_a, p_b, *z).backward()
    assert p_a.grad is not None and p_b.grad is not None
    assert all(t.grad is None for t in z)
    with pytest.raises(RuntimeError, match="stop-gradient"):
        SimSiamLoss.apply(p_a, p_b, *z).backward()


def test_simsiam_loss_known_values():
    p = np.random.default_rng(0).standard_normal((5, 4))
    # p = z (up to a positive scale): cos = 1, loss -1; p = -z: cos = -1, loss 1
    assert simsiam_loss(Tensor(p), Tensor(p), Tensor(3 * p), Tensor(p)).item() == pytest.approx(-1)
    assert simsiam_loss(Tensor(p), Tensor(p), Tensor(-p), Tensor(-p)).item() == pytest.approx(1)
