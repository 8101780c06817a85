"""The autograd engine itself: graph order, accumulation, dtypes, no_grad, error messages."""

import numpy as np
import pytest

from tinybt.ops import unbroadcast
from tinybt.tensor import Function, Tensor, no_grad

from .conftest import assert_close


def test_gradient_of_a_shared_input_adds_up():
    # y = x*x + x uses x three times: dy/dx = 2x + 1.
    x = Tensor(np.array([1.5, -2.0, 0.25]), requires_grad=True)
    y = (x * x + x).sum()
    y.backward()
    assert_close(x.grad, 2 * np.array([1.5, -2.0, 0.25]) + 1)


def test_diamond_graph_runs_each_backward_once():
    # a feeds b and c, both feed d: a's gradient must arrive once through each path.
    a = Tensor(np.array([2.0]), requires_grad=True)
    b = a * 3.0
    c = a * a
    d = (b * c).sum()  # d = 3a^3, dd/da = 9a^2 = 36
    d.backward()
    assert_close(a.grad, [36.0])


def test_leaf_gradients_accumulate_across_backward_calls():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 2.0).sum().backward()
    (x * 3.0).sum().backward()
    assert_close(x.grad, [5.0, 5.0])


def test_deep_chain_does_not_hit_the_recursion_limit():
    x = Tensor(np.array([1.0]), requires_grad=True)
    y = x
    for _ in range(3000):
        y = y * 1.0
    y.sum().backward()
    assert_close(x.grad, [1.0])


def test_no_grad_records_no_graph():
    x = Tensor(np.ones(3), requires_grad=True)
    with no_grad():
        y = x * 2.0
    assert not y.requires_grad and y._fn is None


def test_default_dtype_is_float32_and_numbers_follow_the_tensor():
    assert Tensor([1, 2, 3]).dtype == np.float32
    assert Tensor(2.0).dtype == np.float32
    assert Tensor(np.ones(2)).dtype == np.float64  # a float array keeps its dtype
    x64 = Tensor(np.ones(2, dtype=np.float64))
    assert (x64 * 2).dtype == np.float64
    assert (2 - x64).dtype == np.float64
    assert (Tensor(np.ones(2, dtype=np.float32)) / 3).dtype == np.float32


def test_backward_of_non_scalar_needs_an_upstream_gradient():
    x = Tensor(np.ones((2, 2)), requires_grad=True)
    with pytest.raises(RuntimeError, match="non-scalar"):
        (x * 2.0).backward()


def test_a_backward_returning_the_wrong_shape_is_named():
    class Broken(Function):
        def forward(self, x):
            return x.sum()

        def backward(self, grad):
            return (grad,)  # wrong: should be broadcast back to x's shape

    x = Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"Broken.backward returned a gradient of shape \(\)"):
        Broken.apply(x).backward()


@pytest.mark.parametrize("rows", [1, 2, 3])  # with 2 rows zip would pair them with the inputs
def test_a_backward_returning_a_bare_array_is_told_to_return_a_tuple(rows):
    class Bare(Function):
        def forward(self, x, y):
            return x * y

        def backward(self, grad):
            return grad * self.inputs[1].data  # wrong: a bare array, not (dx, dy)

    x, y = (Tensor(np.ones((rows, 3)), requires_grad=True) for _ in range(2))
    message = (
        r"^Bare.backward returned \w+ for its 2 input\(s\): return a tuple with one "
        r"gradient per input, e.g. \(dx,\) for one input, \(dx, dy\) for two$"
    )
    with pytest.raises(RuntimeError, match=message):
        Bare.apply(x, y).backward(np.ones((rows, 3)))


def test_a_backward_returning_none_for_an_input_that_needs_a_gradient_is_named():
    class Lazy(Function):
        def forward(self, x):
            return 2 * x

        def backward(self, grad):
            return (None,)

    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"Lazy.backward returned None .* shape \(3,\)"):
        Lazy.apply(x).backward(np.ones(3))


def test_item_and_numpy_move_values_to_the_host():
    t = Tensor(np.array([[4.0]]))
    assert t.item() == 4.0
    assert isinstance(t.numpy(), np.ndarray)
    with pytest.raises(ValueError, match="one-element"):
        Tensor(np.ones(2)).item()


@pytest.mark.exercise("unbroadcast")
@pytest.mark.parametrize(
    "grad_shape, shape",
    [((4, 3), (3,)), ((4, 3), (4, 1)), ((2, 4, 3), (1, 3)), ((2, 4, 3), ()), ((4, 3), (4, 3))],
)
def test_unbroadcast_sums_over_broadcast_axes(xp, grad_shape, shape):
    grad = xp.asarray(np.random.default_rng(0).standard_normal(grad_shape))
    summed = unbroadcast(grad, shape)
    assert summed.shape == shape
    # Broadcasting x up and summing back must give the same total: <1, grad> is preserved.
    assert_close(summed.sum(), grad.sum(), rtol=1e-12, what="total")
    # Against the definition: the gradient of sum(broadcast_to(x, grad_shape) * grad) w.r.t. x.
    x = Tensor(np.zeros(shape), requires_grad=True)
    (x + Tensor(np.zeros(grad_shape)) * 0.0).backward(grad)
    assert_close(x.grad, summed, rtol=1e-12, what="Add.backward vs unbroadcast")
