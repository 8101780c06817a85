"""2-D convolution as one big matrix product: im2col, GEMM, col2im.

A convolution takes the dot product of each filter with each patch of the input. `im2col`
copies every patch into a column of one matrix, so a single GEMM (general matrix multiply,
the fastest thing a BLAS library does) computes every output of every filter for the whole
batch at once. Its backward is a GEMM again, followed by `col2im`, which adds each column back
onto the patch it came from; col2im is the adjoint (the transpose) of im2col.

Feature maps are laid out (C, H, W, N): channels first, the batch innermost. The encoder turns
its (N, C, H, W) images around once at its entrance (tinybt.model.Encoder); notebook 03 shows
why, with timings. Every copy im2col and col2im make then moves rows of N contiguous numbers,
and all three GEMMs run on contiguous matrices whose products need no rearranging:

    cols     (C KH KW, OH OW N)    row (c, i, j): input channel c at kernel offset (i, j)
                                   column (oh, ow, n): one output pixel of one image
    weight   (F, C KH KW)          the filters, each flattened like a column: a free reshape
    output   (F, OH OW N)          already (F, OH, OW, N), the next layer's input: a free reshape
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

    x[offset(i, j, ...)] of x: (C, H, W, N) is (C, OH, OW, N): rows i, i + stride, ... and
    columns j, j + stride, ... of axes 1 and 2, one strided view, no copy.
    """
    return slice(None), slice(i, i + stride * OH, stride), slice(j, j + stride * OW, stride)


def im2col(x, kernel_size, stride=1, padding=0):
    """Every (C, KH, KW) patch of x as a column.  x: (C, H, W, N) -> cols (C KH KW, OH OW N).

    Row c KH KW + i KW + j holds entry (c, i, j) of each patch (channel, kernel row, kernel
    column: the order in which the weight (F, C, KH, KW) flattens to (F, C KH KW)); column
    (oh OW + ow) N + n is the patch of output pixel (oh, ow) of image n. x is first padded
    with `padding` zeros around H and W. Hint: one strided slice per kernel offset (i, j),
    `offset`, gives the entries that offset sees in every patch of every image at once.
    """
    # BEGIN SOLUTION conv2d: copy every (C, KH, KW) patch of x into a column of cols
    xp = get_array_module(x)
    C, H, W, N = x.shape
    KH, KW = pair(kernel_size)
    OH, OW = output_size(H, KH, stride, padding), output_size(W, KW, stride, padding)
    x_pad = xp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))  # zeros around H, W
    cols = xp.empty((C, KH, KW, OH, OW, N), dtype=x.dtype)
    for i in range(KH):
        for j in range(KW):
            cols[:, i, j] = x_pad[offset(i, j, OH, OW, stride)]
    return cols.reshape(C * KH * KW, OH * OW * N)
    # END SOLUTION


def col2im(cols, x_shape, kernel_size, stride=1, padding=0):
    """The adjoint of im2col: <im2col(x), cols> = <x, col2im(cols)> for every x.

    cols: (C KH KW, OH OW N), laid out as im2col lays it out -> (C, H, W, N) = x_shape, the
    shape of x without im2col's padding: the zeros around x are no input, so what lands on
    them is dropped. Hint: an input pixel can lie in several patches (up to KH KW).
    """
    # BEGIN SOLUTION conv2d: col2im, the adjoint of im2col: (C KH KW, OH OW N) -> x_shape
    xp = get_array_module(cols)
    C, H, W, N = x_shape
    KH, KW = pair(kernel_size)
    OH, OW = output_size(H, KH, stride, padding), output_size(W, KW, stride, padding)
    cols = cols.reshape(C, KH, KW, OH, OW, N)
    dx_pad = xp.zeros((C, H + 2 * padding, W + 2 * padding, N), dtype=cols.dtype)
    for i in range(KH):
        for j in range(KW):
            # Within one offset the slice never repeats an entry, so += adds every term;
            # the overlaps between patches are summed across the loop.
            dx_pad[offset(i, j, OH, OW, stride)] += cols[:, i, j]
    return dx_pad[:, padding : padding + H, padding : padding + W]  # a view: no copy
    # END SOLUTION


class Conv2d(Function):
    """out = conv(x, weight) + bias, with `stride` and zero `padding` on each side.

    x: (C, H, W, N), the batch innermost; weight: (F, C, KH, KW); bias: (F,) or left out
    -> out: (F, OH, OW, N), OH = (H + 2 padding - KH) // stride + 1 (likewise OW).
    Conv2d.apply(x, weight, stride=1, padding=0) has no bias; pass it third to add one.

    With W = weight as (F, C KH KW) and cols = im2col(x), out is the matrix O = W cols plus
    the bias. Hint: that is a matrix product (the matmul exercise), with G = grad as
    (F, OH OW N); the bias is broadcast along the columns; and each pixel of x was copied into
    every column whose patch contains it, so its gradient sums those copies (col2im).
    """

    def forward(self, x, weight, bias=None, stride=1, padding=0):
        if x.ndim != 4 or weight.ndim != 4 or x.shape[0] != weight.shape[1]:
            raise ValueError(
                f"conv2d needs x (C, H, W, N) and weight (F, C, KH, KW) with the same C, "
                f"got {x.shape} and {weight.shape}"
            )
        F, _, KH, KW = weight.shape
        _, H, W, N = x.shape
        OH, OW = output_size(H, KH, stride, padding), output_size(W, KW, stride, padding)
        if OH < 1 or OW < 1:
            raise ValueError(
                f"a {KH}x{KW} kernel does not fit in a {H}x{W} input with padding {padding}: "
                "use a smaller kernel or more padding"
            )
        self.x_shape, self.stride, self.padding = x.shape, stride, padding
        self.weight, self.has_bias = weight, bias is not None
        self.cols = im2col(x, (KH, KW), stride, padding)
        out = weight.reshape(F, -1) @ self.cols  # (F, OH OW N): every output in one GEMM
        if bias is not None:
            out += bias[:, None]
        return out.reshape(F, OH, OW, N)

    def backward(self, grad):
        # BEGIN SOLUTION conv2d: return (dL/dx, dL/dweight[, dL/dbias]) through im2col and GEMMs
        # dL/dW = G colsᵀ,  dL/dcols = Wᵀ G,  dL/dx = col2im(dL/dcols),  dL/dbias = Σ_oh,ow,n G
        F = self.weight.shape[0]
        grad = grad.reshape(F, -1)  # G: (F, OH OW N), free
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
