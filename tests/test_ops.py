"""Gradient checks of the elementwise, reduction, shape and matmul ops: one op per test.

Each test is a learner's exercise (its marker names the task; see docs/EXERCISES.md): it checks
the op's backward against central differences in float64, every entry, with a random upstream
gradient, and fails with the input, the index and both values where they disagree most.
Tolerance: max relative error 1e-6 (a correct op gives about 1e-9).
"""

import numpy as np
import pytest

from tinybt.gradcheck import assert_gradcheck

from .conftest import assert_close

TOL = 1e-6


def rand(*shape, seed=0, low=None):
    """Standard normal float64 values; with `low`, uniform in [low, low + 1) instead."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape) if low is None else low + rng.random(shape)


@pytest.mark.exercise("add")
@pytest.mark.parametrize("shape_x, shape_y", [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (1, 4))])
def test_add_backward(shape_x, shape_y):
    assert_gradcheck(
        lambda x, y: x + y, [rand(*shape_x), rand(*shape_y, seed=1)], tol=TOL, what="add"
    )


@pytest.mark.exercise("add")
def test_sub_is_add_of_negation():
    assert_gradcheck(lambda x, y: x - y, [rand(2, 3), rand(3, seed=1)], tol=TOL, what="sub")


@pytest.mark.exercise("mul")
@pytest.mark.parametrize(
    "shape_x, shape_y", [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1))]
)
def test_mul_backward(shape_x, shape_y):
    assert_gradcheck(
        lambda x, y: x * y, [rand(*shape_x), rand(*shape_y, seed=1)], tol=TOL, what="mul"
    )


@pytest.mark.exercise("pow")
@pytest.mark.parametrize("exponent", [2.0, 3.0, 0.5, -1.0])
def test_pow_backward(exponent):
    x = rand(3, 4, low=0.5)  # positive: x^0.5 and x^-1 are smooth there
    assert_gradcheck(lambda x: x**exponent, [x], tol=TOL, what=f"pow {exponent}")


@pytest.mark.exercise("pow")
def test_div_is_mul_by_reciprocal():
    assert_gradcheck(lambda x, y: x / y, [rand(3, 4), rand(4, low=1.0)], tol=TOL, what="div")


@pytest.mark.exercise("exp-log")
def test_exp_backward():
    assert_gradcheck(lambda x: x.exp(), [rand(3, 4)], tol=TOL, what="exp")


@pytest.mark.exercise("exp-log")
def test_log_backward():
    assert_gradcheck(lambda x: x.log(), [rand(3, 4, low=0.5)], tol=TOL, what="log")


@pytest.mark.exercise("relu")
def test_relu_backward():
    x = rand(4, 5)
    x[np.abs(x) < 0.05] = 0.5  # keep away from the kink at 0
    assert_gradcheck(lambda x: x.relu(), [x], tol=TOL, what="relu")


@pytest.mark.exercise("sum")
@pytest.mark.parametrize(
    "axis, keepdims", [(None, False), (0, False), (1, True), ((0, 2), False), (-1, False)]
)
def test_sum_backward(axis, keepdims):
    assert_gradcheck(
        lambda x: x.sum(axis=axis, keepdims=keepdims),
        [rand(2, 3, 4)],
        tol=TOL,
        what=f"sum axis={axis}",
    )


@pytest.mark.exercise("sum")
@pytest.mark.parametrize("axis", [None, 0, (0, 2)])
def test_mean_and_var_backward(axis):
    assert_gradcheck(lambda x: x.mean(axis=axis), [rand(2, 3, 4)], tol=TOL, what="mean")
    assert_gradcheck(lambda x: x.var(axis=axis), [rand(2, 3, 4)], tol=TOL, what="var")


@pytest.mark.exercise("matmul")
@pytest.mark.parametrize("n, k, m", [(3, 4, 5), (1, 3, 1), (6, 2, 3)])
def test_matmul_backward(n, k, m):
    assert_gradcheck(lambda x, y: x @ y, [rand(n, k), rand(k, m, seed=1)], tol=TOL, what="matmul")


def test_reshape_and_transpose_backward():
    assert_gradcheck(
        lambda x: x.reshape(4, 6).T @ x.reshape(4, 6),
        [rand(2, 3, 4)],
        tol=TOL,
        what="reshape/transpose",
    )
    assert_gradcheck(
        lambda x: x.transpose(2, 0, 1), [rand(2, 3, 4)], tol=TOL, what="transpose(2, 0, 1)"
    )


def test_indexing_backward_with_slices_and_repeated_indices():
    index = np.array([0, 2, 2, 1])  # row 2 picked twice: its gradient must be the sum of both
    assert_gradcheck(lambda x: x[index], [rand(3, 4)], tol=TOL, what="x[[0, 2, 2, 1]]")
    assert_gradcheck(lambda x: x[1:, ::2], [rand(3, 4)], tol=TOL, what="x[1:, ::2]")


def test_forward_values(xp):
    from tinybt.tensor import Tensor

    x = Tensor(np.array([[1.0, -2.0], [3.0, 4.0]]))
    assert_close((x * x + 1.0).relu().sum(axis=0).data, [12.0, 22.0])
    assert_close(x.var().data, np.var([1.0, -2.0, 3.0, 4.0]))
    assert_close((x @ x).data, [[-5.0, -10.0], [15.0, 10.0]])
    assert_close(x.exp().log().data, x.data, rtol=1e-12)
