"""Sum over axes. Mean and variance are compositions of it (see Tensor.mean, Tensor.var)."""

from tinybt.backend import get_array_module
from tinybt.tensor import Function


def _normalise_axes(axis, ndim):
    """axis (None, int or tuple, possibly negative) -> a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else axis
    return tuple(sorted(a % ndim for a in axes))


class Sum(Function):
    """z = sum of x over `axis`.

    x: (*S); z: S with the summed axes removed (or kept as size 1 with keepdims).
    Hint: by how much does z move when one of the entries summed into it moves a little?
    """

    def forward(self, x, axis=None, keepdims=False):
        self.x_shape = x.shape
        self.axes = _normalise_axes(axis, x.ndim)
        self.keepdims = keepdims
        return x.sum(axis=self.axes, keepdims=keepdims)

    def backward(self, grad):
        # BEGIN SOLUTION sum: return (dL/dx,) for z = x summed over self.axes, dL/dx of x's shape
        if not self.keepdims:  # put the summed axes back as size 1 so grad broadcasts against x
            grad = grad.reshape([1 if a in self.axes else n for a, n in enumerate(self.x_shape)])
        return (get_array_module(grad).broadcast_to(grad, self.x_shape),)
        # END SOLUTION
