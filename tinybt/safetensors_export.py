"""A run's encoder as a .safetensors file, named as a PyTorch module of its architecture
names it (docs/EXPORT.md gives that module):

    tinybt                                 PyTorch state_dict
    encoder.layers.i.weight  conv          encoder.layers.i.weight            same layout
    encoder.layers.i.gamma / .beta         encoder.layers.i.weight / .bias    batch norm
    encoder.layers.i.running_mean / _var   the same names, and num_batches_tracked (0)
    projector.layers.i.weight (in, out)    projector.layers.i.weight (out, in), transposed

The file's metadata holds the method, the configuration (JSON), the normalisation (mean and
std per channel, in [0, 1] units), the image size and tinybt's version.
"""

import json
from dataclasses import asdict

import numpy as np

from tinybt import backend, nn

TORCH_NAMES = {"gamma": "weight", "beta": "bias"}


def torch_state(module, prefix):
    """{PyTorch state_dict name: array} of a tinybt encoder or projector under `prefix`."""
    state = {}
    for name, tensor in {**module.named_parameters(), **module.named_buffers()}.items():
        path, _, leaf = name.rpartition(".")
        array = np.ascontiguousarray(backend.to_host(tensor.data), dtype=np.float32)
        if isinstance(_owner(module, path), nn.Linear) and leaf == "weight":
            array = np.ascontiguousarray(array.T)
        state[f"{prefix}.{path}.{TORCH_NAMES.get(leaf, leaf)}"] = array
    for path in _batch_norms(module):
        state[f"{prefix}.{path}.num_batches_tracked"] = np.zeros((), np.int64)
    return state


def _owner(module, path):
    """The submodule of `module` at dotted `path` ("layers.3")."""
    for part in path.split("."):
        module = module[int(part)] if part.isdigit() else getattr(module, part)
    return module


def _batch_norms(module):
    """The dotted paths of the batch norms below `module`, the owners of running statistics."""
    names = {name.rpartition(".")[0] for name in module.named_buffers()}
    return sorted(
        name for name in names if isinstance(_owner(module, name), nn.BatchNorm1d | nn.BatchNorm2d)
    )


def safetensors_metadata(config, mean, std, image_size, version):
    """The file's metadata: {str: str}, as safetensors stores it."""
    return {
        "method": config.method,
        "config": json.dumps(asdict(config)),
        "mean": json.dumps([float(v) for v in mean]),
        "std": json.dumps([float(v) for v in std]),
        "image_size": json.dumps(list(image_size)),
        "tinybt_version": version,
    }
