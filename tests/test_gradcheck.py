"""The gradient checker must catch wrong gradients, not only pass right ones."""

import numpy as np
import pytest

from tinybt import nn
from tinybt.gradcheck import assert_gradcheck, gradcheck, relative_error
from tinybt.ops.elementwise import Mul
from tinybt.tensor import Tensor


class TransposedMul(Mul):
    """A classic bug: the two gradients swapped."""

    def backward(self, grad):
        dx, dy = super().backward(grad)
        return dy, dx


def test_relative_error_definition():
    assert relative_error(np.array(1.0), np.array(1.0)) == 0.0
    assert relative_error(np.array(1.0), np.array(3.0)) == pytest.approx(0.5)
    assert relative_error(np.array(0.0), np.array(0.0)) == 0.0


def test_nearly_zero_entries_are_judged_against_the_gradient_scale():
    # d/dx of (x0 * 1e-9 + x1) is (1e-9, 1): the first entry is far below the scale of the
    # gradient, and checking it relative to itself would only measure rounding noise.
    (result,) = gradcheck(lambda x: x * Tensor(np.array([1e-9, 1.0])), [np.ones(2)])
    assert result.max_rel_error < 1e-9


def test_a_correct_gradient_passes_with_tiny_error():
    x = np.random.default_rng(0).standard_normal((3, 3))
    (result,) = gradcheck(lambda x: (x * x).exp(), [x])
    assert result.max_rel_error < 1e-8


def test_a_wrong_gradient_is_reported_with_input_and_index():
    rng = np.random.default_rng(0)
    with pytest.raises(AssertionError, match=r"dL/dx \(3, 3\): max relative error .* at index"):
        assert_gradcheck(
            lambda x, y: TransposedMul.apply(x, y), [rng.random((3, 3)), rng.random((3, 3))]
        )


def test_parameters_are_checked_too():
    w = Tensor(np.array([[1.0, 2.0], [3.0, 4.0]]), requires_grad=True)
    results = gradcheck(lambda x: x @ w, [np.ones((2, 2))], params={"w": w})
    assert [r.name for r in results] == ["x", "w"]
    assert max(r.max_rel_error for r in results) < 1e-8


def test_inputs_are_named_after_the_parameters_of_fn_or_as_given():
    """A learner reads `dL/dy` in a failed check, not the position of the input."""
    x, y = np.ones((2, 2)), np.ones((2, 2))
    assert [r.name for r in gradcheck(lambda x, y: x * y, [x, y])] == ["x", "y"]
    assert [r.name for r in gradcheck(lambda *t: t[0] * t[1], [x, y])] == ["input0", "input1"]
    assert [r.name for r in gradcheck(Mul.apply, [x, y])] == ["x", "y"]  # Mul.forward's names
    layer = nn.Linear(2, 3, rng=np.random.default_rng(0)).astype("float64")
    named = gradcheck(layer, [x], params=layer.named_parameters())
    assert [r.name for r in named] == ["x", "weight", "bias"]  # Linear.forward(x)
    named = gradcheck(lambda *t: t[0] * t[1], [x, y], names=["Z_a", "Z_b"])
    assert [r.name for r in named] == ["Z_a", "Z_b"]
    with pytest.raises(ValueError, match="2 names for 1 inputs"):
        gradcheck(lambda x: x, [x], names=["x", "y"])


def test_float32_is_refused():
    w = Tensor(np.ones(2, dtype=np.float32), requires_grad=True)
    with pytest.raises(TypeError, match="float64"):
        gradcheck(lambda x: x * w, [np.ones(2)], params={"w": w})
