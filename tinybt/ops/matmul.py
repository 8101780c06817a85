"""Matrix product, the op behind Linear layers and convolution (after im2col)."""

from tinybt.tensor import Function


class MatMul(Function):
    """Z = X @ Y with X: (N, J), Y: (J, M) -> Z: (N, M), each Z_nm = sum_j X_nj Y_jm.

    Hint: write dL/dX_nj = sum_m G_nm dZ_nm/dX_nj (G = dL/dZ) and read the sum as a matrix
    product; the shapes leave one way to multiply G with Y, and one with X.
    """

    def forward(self, x, y):
        if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[0]:
            raise ValueError(f"matmul needs (N, J) @ (J, M), got {x.shape} @ {y.shape}")
        self.x, self.y = x, y
        return x @ y

    def backward(self, grad):
        # BEGIN SOLUTION matmul: return (dL/dX, dL/dY) for Z = X @ Y
        # dL/dX = G Yᵀ  (N, M)(M, J),   dL/dY = Xᵀ G  (J, N)(N, M)
        return grad @ self.y.T, self.x.T @ grad
        # END SOLUTION
