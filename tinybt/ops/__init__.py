"""Differentiable ops: each a Function with a forward and an explicit backward on raw arrays."""

from tinybt.ops.batchnorm import BatchNorm, BatchStandardize
from tinybt.ops.conv import Conv2d, col2im, im2col
from tinybt.ops.elementwise import Add, Exp, Log, Mul, Pow, ReLU, unbroadcast
from tinybt.ops.matmul import MatMul
from tinybt.ops.pool import AvgPool2d, MaxPool2d, global_avg_pool2d
from tinybt.ops.reduce import Sum
from tinybt.ops.shape import GetItem, Reshape, Transpose

__all__ = [
    "Add",
    "AvgPool2d",
    "BatchNorm",
    "BatchStandardize",
    "Conv2d",
    "Exp",
    "GetItem",
    "Log",
    "MatMul",
    "MaxPool2d",
    "Mul",
    "Pow",
    "ReLU",
    "Reshape",
    "Sum",
    "Transpose",
    "col2im",
    "global_avg_pool2d",
    "im2col",
    "unbroadcast",
]
