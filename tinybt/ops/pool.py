"""Pooling: summarise each KH x KW window of every channel by its maximum or its mean.

Feature maps are (C, H, W, N), the batch innermost, as for convolution (tinybt.ops.conv).
Like im2col, the windows are visited one kernel offset (i, j) at a time: x[offset(i, j, ...)]
is entry (i, j) of every window of every image and channel, so there is no loop over pixels.
"""

from tinybt.backend import get_array_module
from tinybt.ops.conv import offset, output_size, pair
from tinybt.tensor import Function


def _grid(shape, kernel_size, stride, what):
    """(KH, KW, OH, OW) for pooling a (C, H, W, N) array of `shape`, or a one-line error."""
    if len(shape) != 4:
        raise ValueError(f"{what} needs (C, H, W, N) input, got shape {shape}")
    KH, KW = pair(kernel_size)
    OH, OW = output_size(shape[1], KH, stride, 0), output_size(shape[2], KW, stride, 0)
    if OH < 1 or OW < 1:
        raise ValueError(f"{what}: a {KH}x{KW} window does not fit in a {shape[1:3]} input")
    return KH, KW, OH, OW


class MaxPool2d(Function):
    """out = the largest entry of each window.  x: (C, H, W, N) -> out: (C, OH, OW, N),
    windows KH x KW, `stride` apart, OH = (H - KH) // stride + 1 (likewise OW).

    Hint: how does out move when an entry of its window that is not the maximum moves a
    little? And when the maximum does? Ties: the first maximum in row-major order within the
    window counts as the maximum (what argmax returns, and what PyTorch does on the CPU). With
    overlapping windows (stride < kernel) an entry can be the maximum of several windows.
    """

    def forward(self, x, kernel_size, stride):
        xp = get_array_module(x)
        KH, KW, OH, OW = _grid(x.shape, kernel_size, stride, "max pooling")
        # windows[k] is entry k = i KW + j of every window: (KH KW, C, OH, OW, N)
        windows = xp.stack([x[offset(i, j, OH, OW, stride)] for i in range(KH) for j in range(KW)])
        self.argmax = windows.argmax(axis=0)
        self.x_shape, self.kernel, self.stride = x.shape, (KH, KW), stride
        return windows.max(axis=0)

    def backward(self, grad):
        # BEGIN SOLUTION maxpool: return (dL/dx,) for out = the maximum of each window (see hint)
        # d out/dx = 1 for the window's maximum, 0 for the others: grad is routed to the argmax,
        # and an entry that is the maximum of several windows receives the sum of their grads
        xp = get_array_module(grad)
        (KH, KW), (OH, OW) = self.kernel, grad.shape[1:3]
        dx = xp.zeros(self.x_shape, dtype=grad.dtype)
        for i in range(KH):
            for j in range(KW):
                dx[offset(i, j, OH, OW, self.stride)] += grad * (self.argmax == i * KW + j)
        return (dx,)
        # END SOLUTION


class AvgPool2d(Function):
    """out = the mean of each window.  x: (C, H, W, N) -> out: (C, OH, OW, N), windows as in
    MaxPool2d.

    Hint: every entry of a window weighs the same in its mean; an entry may lie in several
    windows.
    """

    def forward(self, x, kernel_size, stride):
        KH, KW, OH, OW = _grid(x.shape, kernel_size, stride, "average pooling")
        self.x_shape, self.kernel, self.stride = x.shape, (KH, KW), stride
        total = sum(x[offset(i, j, OH, OW, stride)] for i in range(KH) for j in range(KW))
        return total / (KH * KW)

    def backward(self, grad):
        # BEGIN SOLUTION avgpool: return (dL/dx,) for out = the mean of each window (see hint)
        # d out/dx = 1 / (KH KW): each entry receives grad / (KH KW), summed over its windows
        xp = get_array_module(grad)
        (KH, KW), (OH, OW) = self.kernel, grad.shape[1:3]
        dx = xp.zeros(self.x_shape, dtype=grad.dtype)
        share = grad / (KH * KW)
        for i in range(KH):
            for j in range(KW):
                dx[offset(i, j, OH, OW, self.stride)] += share
        return (dx,)
        # END SOLUTION


def global_avg_pool2d(x):
    """The mean of each channel over the whole image.  x: (C, H, W, N) Tensor -> (N, C).

    Here the batch comes back to the front: the (C, N) means are transposed to the (N, C)
    features that the rest of the network (Linear, BatchNorm1d) takes. Not an op of its own:
    it is x.mean(axis=(1, 2)).T, and autograd composes its backward (every pixel receives
    grad / (H W)) from Sum, Mul and Transpose.
    """
    if x.ndim != 4:
        raise ValueError(f"global average pooling needs (C, H, W, N) input, got shape {x.shape}")
    return x.mean(axis=(1, 2)).T
