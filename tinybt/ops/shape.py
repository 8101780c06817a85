"""Ops that move entries around without changing them: reshape, transpose, indexing.

Their backward sends each entry of the gradient back to where its value came from.
"""

from tinybt.backend import get_array_module, scatter_add
from tinybt.tensor import Function


class Reshape(Function):
    """z = x viewed with another shape (same entries, same order).  dL/dx = grad reshaped back."""

    def forward(self, x, shape):
        self.x_shape = x.shape
        return x.reshape(shape)

    def backward(self, grad):
        return (grad.reshape(self.x_shape),)


class Transpose(Function):
    """z = x with its axes permuted (reversed when `axes` is None).  dL/dx = grad with the
    inverse permutation."""

    def forward(self, x, axes=None):
        self.axes = tuple(reversed(range(x.ndim))) if axes is None else axes
        return x.transpose(self.axes)

    def backward(self, grad):
        inverse = [0] * len(self.axes)
        for position, axis in enumerate(self.axes):
            inverse[axis] = position
        return (grad.transpose(inverse),)


class GetItem(Function):
    """z = x[index] for any NumPy index (ints, slices, integer arrays).

    dL/dx is zero except at the selected entries, which receive grad; an entry selected
    several times (repeated integer indices) receives the sum, hence scatter-add.
    """

    def forward(self, x, index):
        self.x_shape, self.index = x.shape, index
        return x[index]

    def backward(self, grad):
        xp = get_array_module(grad)
        dx = xp.zeros(self.x_shape, dtype=grad.dtype)
        scatter_add(dx, self.index, grad)
        return (dx,)
