"""Matrix product, the op behind Linear layers and convolution (after im2col)."""

from tinybt.tensor import Function


class MatMul(Function):
    """Z = X @ Y with X: (N, K), Y: (K, M) -> Z: (N, M).

    Each Z_nm = sum_k X_nk Y_km, so dL/dX = grad @ Y^T  (N, M)(M, K)
                                  and dL/dY = X^T @ grad (K, N)(N, M).
    """

    def forward(self, x, y):
        if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[0]:
            raise ValueError(f"matmul needs (N, K) @ (K, M), got {x.shape} @ {y.shape}")
        self.x, self.y = x, y
        return x @ y

    def backward(self, grad):
        # BEGIN SOLUTION matmul: return (dL/dX, dL/dY) for Z = X @ Y
        return grad @ self.y.T, self.x.T @ grad
        # END SOLUTION
