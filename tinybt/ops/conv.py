"""2-D convolution as one big matrix product: im2col, GEMM, col2im.

A convolution takes the dot product of each filter with each patch of the input. `im2col`
copies every patch into a column of one matrix, so a single GEMM (general matrix multiply,
the fastest thing a BLAS library does) computes every output of every filter for the whole
batch at once. Its backward is a GEMM again, followed by `col2im`, which adds each column back
onto the patch it came from; col2im is the adjoint (the transpose) of im2col.

Layout, chosen so that all three GEMMs run on contiguous matrices without copies:

    cols     (C KH KW, N OH OW)    row (c, i, j): input channel c at kernel offset (i, j)
                                   column (n, oh, ow): one output pixel of one image
    weight   (F, C KH KW)          the filters, each flattened like a column: a free reshape
    output   (F, N OH OW)          rearranged once to (N, F, OH, OW)
"""

from tinybt.backend import get_array_module
from tinybt.tensor import Function


def pair(value):
    """3 -> (3, 3); (3, 5) -> (3, 5): kernel sizes may be given as one number or two."""
    return (value, value) if isinstance(value, int) else tuple(value)


def output_size(size, kernel, stride, padding):
    """How many positions a window of `kernel` takes along an axis of `size`: OH or OW."""
    return (size + 2 * padding - kernel) // stride + 1


def offset(i, j, OH, OW, stride):
    """Index of the entry at kernel offset (i, j) of every window, for OH x OW windows.

    x[offset(i, j, ...)] is (..., OH, OW): rows i, i + stride, ... and columns j, j + stride,
    ... of the last two axes, one strided view, no copy.
    """
    return ..., slice(i, i + stride * OH, stride), slice(j, j + stride * OW, stride)


def im2col(x, kernel_size, stride=1, padding=0):
    """Every (C, KH, KW) patch of x as a column.  x: (N, C, H, W) -> cols (C KH KW, N OH OW).

    One strided slice per kernel offset (i, j): the entries that offset sees in every patch
    of every image, copied in one go. KH KW copies in all, no loop over images or pixels.
    """
    # BEGIN SOLUTION conv2d: copy every (C, KH, KW) patch of x into a column of cols
    xp = get_array_module(x)
    N, C, H, W = x.shape
    KH, KW = pair(kernel_size)
    OH, OW = output_size(H, KH, stride, padding), output_size(W, KW, stride, padding)
    # Padded copy laid out (C, N, ...) like the columns, so each offset's copy below reads
    # and writes memory in the same order: measurably faster than slicing x as it is.
    x_pad = xp.zeros((C, N, H + 2 * padding, W + 2 * padding), dtype=x.dtype)
    x_pad[:, :, padding : padding + H, padding : padding + W] = x.transpose(1, 0, 2, 3)
    cols = xp.empty((C, KH, KW, N, OH, OW), dtype=x.dtype)
    for i in range(KH):
        for j in range(KW):
            cols[:, i, j] = x_pad[offset(i, j, OH, OW, stride)]
    return cols.reshape(C * KH * KW, N * OH * OW)
    # END SOLUTION


def col2im(cols, x_shape, kernel_size, stride=1, padding=0):
    """The adjoint of im2col: add each column back onto its patch.  -> (N, C, H, W) = x_shape.

    cols: (C KH KW, N OH OW). An input pixel lies in up to KH KW patches (fewer at the
    borders, and with stride > 1), so it receives the sum of those entries:
    <im2col(x), cols> = <x, col2im(cols)> for all x.
    """
    # BEGIN SOLUTION conv2d: add each column of cols back onto the patch of x it came from
    xp = get_array_module(cols)
    N, C, H, W = x_shape
    KH, KW = pair(kernel_size)
    OH, OW = output_size(H, KH, stride, padding), output_size(W, KW, stride, padding)
    cols = cols.reshape(C, KH, KW, N, OH, OW)
    dx_pad = xp.zeros((C, N, H + 2 * padding, W + 2 * padding), dtype=cols.dtype)
    for i in range(KH):
        for j in range(KW):
            # Within one offset the slice never repeats an entry, so += adds every term;
            # the overlaps between patches are summed across the loop.
            dx_pad[offset(i, j, OH, OW, stride)] += cols[:, i, j]
    dx = dx_pad[:, :, padding : padding + H, padding : padding + W]
    return xp.ascontiguousarray(dx.transpose(1, 0, 2, 3))
    # END SOLUTION


class Conv2d(Function):
    """out = conv(x, weight) + bias, with `stride` and zero `padding` on each side.

    x: (N, C, H, W), weight: (F, C, KH, KW), bias: (F,) or left out -> out: (N, F, OH, OW),
    OH = (H + 2 padding - KH) // stride + 1 (likewise OW).
    Conv2d.apply(x, weight, stride=1, padding=0) has no bias; pass it third to add one.

    With W = weight as (F, C KH KW) and cols = im2col(x), out is the matrix O = W cols, so
        dL/dW = G colsᵀ,   dL/dcols = Wᵀ G,   dL/dx = col2im(dL/dcols),   dL/dbias = Σ_n,oh,ow G
    where G is grad as (F, N OH OW).
    """

    def forward(self, x, weight, bias=None, stride=1, padding=0):
        if x.ndim != 4 or weight.ndim != 4 or x.shape[1] != weight.shape[1]:
            raise ValueError(
                f"conv2d needs x (N, C, H, W) and weight (F, C, KH, KW) with the same C, "
                f"got {x.shape} and {weight.shape}"
            )
        F, _, KH, KW = weight.shape
        N, _, H, W = x.shape
        OH, OW = output_size(H, KH, stride, padding), output_size(W, KW, stride, padding)
        if OH < 1 or OW < 1:
            raise ValueError(
                f"a {KH}x{KW} kernel does not fit in a {H}x{W} input with padding {padding}: "
                "use a smaller kernel or more padding"
            )
        self.x_shape, self.stride, self.padding = x.shape, stride, padding
        self.weight, self.has_bias = weight, bias is not None
        self.cols = im2col(x, (KH, KW), stride, padding)
        out = weight.reshape(F, -1) @ self.cols  # (F, N OH OW): every output in one GEMM
        if bias is not None:
            out += bias[:, None]
        return get_array_module(out).ascontiguousarray(
            out.reshape(F, N, OH, OW).transpose(1, 0, 2, 3)
        )

    def backward(self, grad):
        # BEGIN SOLUTION conv2d: return (dL/dx, dL/dweight[, dL/dbias]) through im2col and GEMMs
        F = self.weight.shape[0]
        grad = grad.transpose(1, 0, 2, 3).reshape(F, -1)  # G: (F, N OH OW), one copy
        dweight = (grad @ self.cols.T).reshape(self.weight.shape)
        if self.needs_grad[0]:  # not for the images entering the first layer
            dcols = self.weight.reshape(F, -1).T @ grad
            dx = col2im(dcols, self.x_shape, self.weight.shape[2:], self.stride, self.padding)
        else:
            dx = None
        if self.has_bias:
            return dx, dweight, grad.sum(axis=1)
        return dx, dweight
        # END SOLUTION
