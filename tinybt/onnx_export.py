"""A run's encoder as an ONNX graph, in evaluation mode, written with the `onnx` package only.

    images uint8 (N, H, W, 3) --Cast, /255, -mean, /std, Transpose--> (N, 3, H, W)
        --(Conv, BatchNormalization, Relu) per block, GlobalAveragePool, Flatten--> features (N, F)
        [--(MatMul, BatchNormalization, Relu) ..., MatMul--> embeddings (N, D)]

The graph does what evaluation does (tinybt/probe.py, extract_features): the training set's
per-channel mean and std, batch norm with its running statistics. N is free; H and W are fixed
to the training images' size in the input's shape, so a runtime refuses images of another size
(the convolutions and the global pooling would accept them, but the encoder never saw their
scale): resize them to H x W first.
"""

import json
from dataclasses import asdict

import numpy as np

OPSET = 17


def onnx_model(encoder, config, mean, std, image_size, projector=None, version="unknown"):
    """The onnx.ModelProto of `encoder` (a tinybt.model.Encoder) taking uint8 images of
    image_size = (H, W); with `projector` a second output, its embeddings. mean, std: (3,)."""
    from onnx import TensorProto, helper

    graph = _GraphBuilder()
    x = graph.node("Cast", ["images"], to=TensorProto.FLOAT)
    x = graph.node("Div", [x, graph.constant("scale", np.float32(255))])
    x = graph.node("Sub", [x, graph.constant("mean", np.asarray(mean, np.float32))])
    x = graph.node("Div", [x, graph.constant("std", np.asarray(std, np.float32))])
    x = graph.node("Transpose", [x], perm=[0, 3, 1, 2])  # (N, H, W, 3) -> (N, 3, H, W)
    features = graph.name_last(graph.layers(encoder.layers, "encoder.layers", x), "features")
    outputs = [features]
    if projector is not None:
        y = graph.layers(projector.layers, "projector.layers", features)
        outputs.append(graph.name_last(y, "embeddings"))
    H, W = image_size
    widths = {"features": encoder.out_features}
    if projector is not None:
        widths["embeddings"] = projector.layers[-1].weight.shape[1]
    model = helper.make_model(
        helper.make_graph(
            graph.nodes,
            "tinybt_encoder",
            [helper.make_tensor_value_info("images", TensorProto.UINT8, ["N", H, W, 3])],
            [
                helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", widths[n]])
                for n in outputs
            ],
            graph.initializers,
        ),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="tinybt",
        producer_version=version,
    )
    helper.set_model_props(
        model,
        {
            "method": config.method,
            "config": json.dumps(asdict(config)),
            "tinybt_version": version,
            "mean": json.dumps([float(v) for v in mean]),
            "std": json.dumps([float(v) for v in std]),
        },
    )
    return model


class _GraphBuilder:
    """Collects the nodes and weights (initializers) of a graph, naming each output once."""

    def __init__(self):
        self.nodes, self.initializers, self.count = [], [], 0

    def constant(self, name, array):
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op, inputs, **attributes):
        from onnx import helper

        self.count += 1
        name = f"{op.lower()}_{self.count}"
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attributes))
        return name

    def name_last(self, x, name):
        """Rename x, the output of the last node, to `name` (a graph output's name)."""
        assert self.nodes[-1].output[0] == x
        self.nodes[-1].output[0] = name
        return name

    def layers(self, sequential, prefix, x):
        """x through every layer of a tinybt Sequential, in evaluation mode."""
        for index, layer in enumerate(sequential):
            x = self.layer(layer, f"{prefix}.{index}", x)
        return x

    def layer(self, layer, name, x):
        from tinybt import backend, nn

        def weight(tensor, suffix):
            return self.constant(f"{name}.{suffix}", backend.to_host(tensor.data))

        if isinstance(layer, nn.Conv2d):
            inputs = [x, weight(layer.weight, "weight")]
            if layer.bias is not None:
                inputs.append(weight(layer.bias, "bias"))
            KH, KW = layer.weight.shape[2:]
            p = layer.padding
            return self.node(
                "Conv", inputs, kernel_shape=[KH, KW], strides=[layer.stride] * 2, pads=[p, p, p, p]
            )
        if isinstance(layer, nn.BatchNorm1d | nn.BatchNorm2d):
            names = ("gamma", "beta", "running_mean", "running_var")
            inputs = [x, *(weight(getattr(layer, part), part) for part in names)]
            return self.node("BatchNormalization", inputs, epsilon=layer.eps)
        if isinstance(layer, nn.ReLU):
            return self.node("Relu", [x])
        if isinstance(layer, nn.GlobalAvgPool2d):
            return self.node("Flatten", [self.node("GlobalAveragePool", [x])], axis=1)
        if isinstance(layer, nn.Linear):  # tinybt's weight is (in, out): y = x W
            y = self.node("MatMul", [x, weight(layer.weight, "weight")])
            return y if layer.bias is None else self.node("Add", [y, weight(layer.bias, "bias")])
        raise TypeError(f"no ONNX form for {type(layer).__name__}")
