"""Optimisers against their update rules written out by hand, and the learning-rate schedule."""

import math

import numpy as np
import pytest

from tinybt import backend
from tinybt.optim import LARS, SGD, Adam, AdamW, warmup_cosine
from tinybt.tensor import Tensor

from .conftest import assert_close


def parameter(values, grad):
    p = Tensor(np.array(values, dtype=np.float64), requires_grad=True)
    p.grad = backend.to_device(np.array(grad, dtype=np.float64))
    return p


def test_sgd_momentum_two_steps():
    p = parameter([1.0, -2.0], [0.5, 1.0])
    opt = SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01)
    opt.step()
    g1 = np.array([0.5, 1.0]) + 0.01 * np.array([1.0, -2.0])
    theta1 = np.array([1.0, -2.0]) - 0.1 * g1
    assert_close(p.data, theta1, rtol=1e-12)
    opt.step()  # same grad again: m = 0.9 g1 + g2
    g2 = np.array([0.5, 1.0]) + 0.01 * theta1
    assert_close(p.data, theta1 - 0.1 * (0.9 * g1 + g2), rtol=1e-12)


@pytest.mark.parametrize("cls", [Adam, AdamW])
def test_adam_first_step_by_hand(cls):
    p = parameter([[1.0, -2.0], [0.5, 3.0]], [[0.5, -1.0], [2.0, 0.1]])
    opt = cls([p], lr=0.01, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1)
    theta, grad = p.numpy().copy(), backend.to_host(p.grad).copy()  # on NumPy, not copies
    opt.step()
    if cls is Adam:
        g = grad + 0.1 * theta
        decayed = theta
    else:
        g = grad
        decayed = theta - 0.01 * 0.1 * theta
    m_hat = (0.1 * g) / (1 - 0.9)  # bias correction makes the first step lr * sign-like
    v_hat = (0.01 * g * g) / (1 - 0.99)
    assert_close(p.data, decayed - 0.01 * m_hat / (np.sqrt(v_hat) + 1e-8), rtol=1e-12)


def test_lars_trust_ratio_for_weights_and_plain_momentum_for_biases():
    w = parameter([[3.0, 4.0]], [[0.6, 0.8]])  # ‖w‖ = 5, ‖g‖ = 1 (before weight decay)
    b = parameter([1.0, 2.0], [0.5, -0.5])
    opt = LARS([w, b], lr=0.5, momentum=0.9, weight_decay=0.0, eta=0.01, bias_lr_scale=0.1)
    opt.step()
    # weight: g scaled by η‖w‖/‖g‖ = 0.01 · 5 / 1 = 0.05
    assert_close(w.data, np.array([[3.0, 4.0]]) - 0.5 * 0.05 * np.array([[0.6, 0.8]]), rtol=1e-12)
    # bias: no trust ratio, learning rate 0.5 · 0.1
    assert_close(b.data, np.array([1.0, 2.0]) - 0.05 * np.array([0.5, -0.5]), rtol=1e-12)


def test_lars_weight_decay_enters_before_the_trust_ratio():
    w = parameter([[3.0, 4.0]], [[0.0, 0.0]])  # gradient 0: only weight decay moves w
    opt = LARS([w], lr=1.0, momentum=0.0, weight_decay=0.1, eta=0.001)
    opt.step()
    g = 0.1 * np.array([[3.0, 4.0]])
    g = g * 0.001 * 5.0 / np.linalg.norm(g)
    assert_close(w.data, np.array([[3.0, 4.0]]) - g, rtol=1e-12)


def test_state_dict_round_trip_continues_identically():
    def run(steps, restore_after=None):
        p = parameter([1.0, -1.0, 0.5], [0.0, 0.0, 0.0])
        opt = Adam([p], lr=0.1)
        for t in range(steps):
            p.grad = backend.to_device(np.array([0.3, -0.2, 0.1]) * (t + 1))
            opt.step()
            if t == restore_after:
                state = opt.state_dict()
                opt = Adam([p], lr=0.1)
                opt.load_state_dict(state)
        return p.data

    assert_close(run(4, restore_after=1), run(4), rtol=0, atol=0)


def test_optimiser_skips_parameters_without_gradient():
    p = parameter([1.0], [1.0])
    p.grad = None
    SGD([p], lr=1.0).step()
    assert_close(p.data, [1.0])


def test_warmup_cosine_schedule():
    base, total, warmup = 2.0, 110, 10
    assert warmup_cosine(0, total, base, warmup) == 0.0
    assert warmup_cosine(5, total, base, warmup) == pytest.approx(1.0)
    assert warmup_cosine(10, total, base, warmup) == pytest.approx(base)
    assert warmup_cosine(60, total, base, warmup) == pytest.approx(base * (0.5 + 0.001 * 0.5))
    assert warmup_cosine(110, total, base, warmup) == pytest.approx(base * 0.001)
    rates = [warmup_cosine(s, total, base, warmup) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(rates, rates[1:], strict=False)), "must decay monotonically"
    assert math.isclose(
        warmup_cosine(3, 100, 1.0, 0),
        0.5 * (1 + math.cos(math.pi * 0.03)) + 0.001 * 0.5 * (1 - math.cos(math.pi * 0.03)),
    )


def test_against_torch_optimisers():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    theta0 = rng.standard_normal((3, 4))
    grads = [rng.standard_normal((3, 4)) for _ in range(3)]
    cases = [
        (SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
        (Adam, torch.optim.Adam, dict(lr=0.01, weight_decay=0.01)),
        (AdamW, torch.optim.AdamW, dict(lr=0.01, weight_decay=0.01)),
    ]
    for ours_cls, torch_cls, options in cases:
        ours = Tensor(theta0.copy(), requires_grad=True)
        theirs = torch.tensor(theta0.copy(), requires_grad=True)
        opt, topt = ours_cls([ours], **options), torch_cls([theirs], **options)
        for g in grads:
            ours.grad = backend.to_device(g)
            theirs.grad = torch.tensor(g)
            opt.step()
            topt.step()
        assert_close(ours.data, theirs.detach().numpy(), rtol=1e-10, what=ours_cls.__name__)
