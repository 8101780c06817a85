"""The Barlow Twins loss: the hand-derived op against autograd, central differences and
reference values. (The PyTorch comparison is in test_torch_reference.py.)"""

import numpy as np
import pytest

from tinybt.gradcheck import assert_gradcheck
from tinybt.methods.barlow_twins import (
    barlow_twins_loss,
    barlow_twins_loss_autograd,
    cross_correlation,
    loss_terms,
    off_diagonal,
)
from tinybt.tensor import Tensor

from .conftest import assert_close

TOL = 1e-6
SHAPES = [(8, 3), (6, 10), (16, 16)]  # includes N < D, as with a 512-d projector at batch 256


def embeddings(n, d, seed=0):
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal((n, d))  # correlated views, as a trained network gives
    return shared + 0.5 * rng.standard_normal((n, d)), shared + 0.5 * rng.standard_normal((n, d))


@pytest.mark.exercise("bt-loss")
@pytest.mark.parametrize("n, d", SHAPES)
@pytest.mark.parametrize("standardized", [True, False])
def test_barlow_twins_loss_backward(n, d, standardized):
    z_a, z_b = embeddings(n, d)
    assert_gradcheck(
        lambda Z_a, Z_b: barlow_twins_loss(Z_a, Z_b, lambd=0.3, standardized=standardized),
        [z_a, z_b],
        tol=TOL,
        what=f"Barlow Twins loss N={n} D={d}",
    )


@pytest.mark.exercise("bt-loss")
@pytest.mark.parametrize("n, d", SHAPES)
@pytest.mark.parametrize("standardized", [True, False])
def test_hand_derived_op_matches_autograd_composition(n, d, standardized):
    z_a, z_b = embeddings(n, d, seed=1)
    results = []
    for loss_fn in (barlow_twins_loss, barlow_twins_loss_autograd):
        a, b = Tensor(z_a, requires_grad=True), Tensor(z_b, requires_grad=True)
        loss = loss_fn(a, b, lambd=0.0051, standardized=standardized)
        loss.backward()
        results.append((loss.data, a.grad, b.grad))
    for fused, composed, name in zip(*results, ["loss", "dL/dZa", "dL/dZb"], strict=False):
        assert_close(fused, composed, rtol=1e-10, atol=1e-12, what=name)


def test_autograd_composition_passes_gradcheck():
    z_a, z_b = embeddings(6, 10, seed=2)
    assert_gradcheck(
        lambda a, b: barlow_twins_loss_autograd(a, b), [z_a, z_b], tol=TOL, what="composed loss"
    )


def test_identical_decorrelated_views_give_zero_loss():
    # Orthonormal columns that are also orthogonal to the all-ones vector (zero mean): QR of
    # a matrix whose first column is ones gives them as columns 1.. of Q. Then C is exactly I.
    a = np.random.default_rng(0).standard_normal((8, 8))
    a[:, 0] = 1.0
    q, _ = np.linalg.qr(a)
    z = q[:, 1:5]
    loss = barlow_twins_loss(Tensor(z), Tensor(z), eps=0.0)
    assert abs(loss.item()) < 1e-12


def test_reference_value_by_hand():
    # N = 2, D = 2: each standardised column is (±1, ∓1), so C entries are ±1.
    z_a = np.array([[1.0, 3.0], [-1.0, -3.0]])
    z_b = np.array([[2.0, -1.0], [-2.0, 1.0]])
    c = cross_correlation(z_a, z_b, eps=0.0)
    assert_close(c, [[1.0, -1.0], [1.0, -1.0]], rtol=1e-12)
    # on-diagonal (1-1)² + (1+1)² = 4;  off-diagonal λ((-1)² + 1²) = 2λ
    on, off = loss_terms(c, lambd=0.5)
    assert float(on) == pytest.approx(4.0) and float(off) == pytest.approx(1.0)
    loss = barlow_twins_loss(Tensor(z_a), Tensor(z_b), lambd=0.5, eps=0.0)
    assert loss.item() == pytest.approx(5.0)


def test_off_diagonal_picks_exactly_the_off_diagonal_entries():
    c = np.arange(16.0).reshape(4, 4)
    expected = c[~np.eye(4, dtype=bool)]
    assert_close(off_diagonal(c), expected)


def test_mismatched_views_are_refused():
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        barlow_twins_loss(Tensor(np.ones((4, 3))), Tensor(np.ones((4, 5))))


@pytest.mark.parametrize("n, d", SHAPES)
@pytest.mark.parametrize("standardized", [True, False])
def test_against_pytorch_official_formula(n, d, standardized):
    """The official code's loss in PyTorch autograd: same value and gradients in float64."""
    torch = pytest.importorskip("torch")
    z_a, z_b = embeddings(n, d, seed=3)
    lambd = 0.0051

    def official(z1, z2):  # main.py of facebookresearch/barlowtwins, one process
        if standardized:
            bn = torch.nn.BatchNorm1d(d, affine=False).double()
            z1, z2 = bn(z1), bn(z2)
        else:
            z1, z2 = z1 - z1.mean(0), z2 - z2.mean(0)
        c = z1.T @ z2 / n
        on_diag = torch.diagonal(c).add_(-1).pow_(2).sum()
        off_diag = c.flatten()[:-1].view(d - 1, d + 1)[:, 1:].flatten().pow_(2).sum()
        return on_diag + lambd * off_diag

    t_a = torch.tensor(z_a, requires_grad=True)
    t_b = torch.tensor(z_b, requires_grad=True)
    expected = official(t_a, t_b)
    expected.backward()
    a, b = Tensor(z_a, requires_grad=True), Tensor(z_b, requires_grad=True)
    loss = barlow_twins_loss(a, b, lambd=lambd, standardized=standardized)
    loss.backward()
    assert_close(loss.data, expected.item(), rtol=1e-10, what="loss")
    assert_close(a.grad, t_a.grad.numpy(), rtol=1e-8, atol=1e-12, what="dL/dZa")
    assert_close(b.grad, t_b.grad.numpy(), rtol=1e-8, atol=1e-12, what="dL/dZb")
