"""Elementwise ops with NumPy broadcasting, and `unbroadcast`, which undoes it in a backward.

Broadcasting copies an input along new or size-1 axes; the chain rule then sums the gradient
over those copies. `unbroadcast(grad, shape)` is that sum. The two ops that broadcast, Add and
Mul, call it (subtraction and division are built from them); the one-input ops keep their
input's shape and do not need it.
"""

from tinybt.backend import get_array_module
from tinybt.tensor import Function


def unbroadcast(grad, shape):
    """Sum `grad` down to `shape`: the backward of broadcasting an array of `shape` up.

    grad: (*leading, *S') where S' broadcasts from `shape`. Axes that broadcasting added in
    front are summed away; axes where `shape` has size 1 are summed with keepdims.
    e.g. (N, D) -> (D,) sums over N; (N, D) -> (N, 1) sums over D.
    """
    # BEGIN SOLUTION unbroadcast: sum grad over the axes that broadcasting added or stretched
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(
        axis for axis, size in enumerate(shape) if size == 1 and grad.shape[axis] != 1
    )
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad
    # END SOLUTION


class Add(Function):
    """z = x + y (broadcast).

    Hint: how much does z_i move when x_i moves? Then the chain rule, dL/dx_i = G_i dz_i/dx_i,
    and a sum over the copies where broadcasting stretched an input (see unbroadcast).
    """

    def forward(self, x, y):
        self.x_shape, self.y_shape = x.shape, y.shape
        return x + y

    def backward(self, grad):
        # BEGIN SOLUTION add: return (dL/dx, dL/dy) for z = x + y, undoing broadcasting
        # dz/dx = dz/dy = 1, so dL/dx = G and dL/dy = G, each summed back to its input's shape
        return unbroadcast(grad, self.x_shape), unbroadcast(grad, self.y_shape)
        # END SOLUTION


class Mul(Function):
    """z = x * y (broadcast), entry by entry.

    Hint: z_i depends on x_i and y_i alone; differentiate x_i y_i by each, apply the chain
    rule with G = dL/dz, and sum over broadcast copies as Add does.
    """

    def forward(self, x, y):
        self.x, self.y = x, y
        return x * y

    def backward(self, grad):
        # BEGIN SOLUTION mul: return (dL/dx, dL/dy) for z = x * y, undoing broadcasting
        # dz/dx = y and dz/dy = x, so dL/dx = G ⊙ y and dL/dy = G ⊙ x, each unbroadcast
        return unbroadcast(grad * self.y, self.x.shape), unbroadcast(grad * self.x, self.y.shape)
        # END SOLUTION


class Pow(Function):
    """z = x ** p for a constant number p, entry by entry.

    Hint: the power rule, then the chain rule with G = dL/dz (p is a constant: no gradient).
    """

    def forward(self, x, exponent):
        self.x, self.exponent = x, exponent
        return x**exponent

    def backward(self, grad):
        # BEGIN SOLUTION pow: return (dL/dx,) for z = x ** p
        # dz/dx = p x^(p-1), so dL/dx = G ⊙ p x^(p-1)
        return (grad * self.exponent * self.x ** (self.exponent - 1),)
        # END SOLUTION


class Exp(Function):
    """z = e^x, entry by entry.

    Hint: the derivative of e^x is a value forward has already computed: save it.
    """

    def forward(self, x):
        self.z = get_array_module(x).exp(x)
        return self.z

    def backward(self, grad):
        # BEGIN SOLUTION exp-log: return (dL/dx,) for z = exp(x)
        # dz/dx = e^x = z, so dL/dx = G ⊙ z
        return (grad * self.z,)
        # END SOLUTION


class Log(Function):
    """z = ln x, entry by entry (x > 0)."""

    def forward(self, x):
        self.x = x
        return get_array_module(x).log(x)

    def backward(self, grad):
        # BEGIN SOLUTION exp-log: return (dL/dx,) for z = log(x)
        # dz/dx = 1 / x, so dL/dx = G / x
        return (grad / self.x,)
        # END SOLUTION


class ReLU(Function):
    """z = max(x, 0), entry by entry.

    Hint: on each side of 0 the function is a line; which slope does each side have?
    (At 0 itself the derivative does not exist; gradient checks keep away from it.)
    """

    def forward(self, x):
        self.positive = x > 0
        return get_array_module(x).maximum(x, 0)

    def backward(self, grad):
        # BEGIN SOLUTION relu: return (dL/dx,) for z = max(x, 0)
        # dz/dx = 1 where x > 0, else 0: the gradient passes where x was positive
        return (grad * self.positive,)
        # END SOLUTION
