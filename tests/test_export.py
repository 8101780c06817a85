"""python -m tinybt.export: the ONNX graph and the .safetensors file give tinybt's evaluation
features, and bad input is a one-line error."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinybt import backend
from tinybt.augment import to_model_input
from tinybt.build import build_model, load_split
from tinybt.config import Config
from tinybt.data import cifar10
from tinybt.errors import TinyBTError
from tinybt.export import main
from tinybt.methods.target import WithTarget
from tinybt.model import parse_dims
from tinybt.onnx_export import onnx_model
from tinybt.run import train
from tinybt.run_export import export_run, write_safetensors
from tinybt.tensor import Tensor, no_grad

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("safetensors")

pytestmark = pytest.mark.host

TOLERANCE = 1e-5


def evaluation_outputs(network, images, mean, std):
    """tinybt's features (and embeddings) for uint8 images, as evaluation computes them."""
    network.eval()
    with no_grad():
        x = Tensor(to_model_input(images, mean, std))
        features = network.encoder(x)
        embeddings = network.projector(features)
    network.train()
    return features.data, embeddings.data


def images_for(size, count=64, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, *size, 3), dtype=np.uint8)


def assert_close(actual, expected):
    scale = np.abs(expected).max()
    np.testing.assert_allclose(actual, expected, rtol=TOLERANCE, atol=TOLERANCE * scale)


def onnx_outputs(path, images):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": images})


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """Two trained tiny runs: the preset, and one with other --widths/--strides/--projector."""
    backend.set_backend("numpy")
    folder = tmp_path_factory.mktemp("runs")
    runs = {}
    for name, changes in {
        "tiny": {},
        "variant": dict(widths="4-8-12", strides="1-2-1", blocks=2, projector="16-24-8"),
        "byol": dict(method="byol"),  # a target network: the online one is exported
    }.items():
        config = Config.preset(
            "tiny", out=str(folder / name), data_dir=str(folder / "data"), evaluate=False, **changes
        )
        result = train(config, progress=False, log=None)
        runs[name] = (folder / name, config, result["run"].model)
    return runs


def trained_network(run):
    _, config, model = run
    return (model.online if isinstance(model, WithTarget) else model), config


@pytest.mark.parametrize("name", ["tiny", "variant", "byol"])
def test_onnx_gives_the_evaluation_features(tiny_runs, tmp_path, name):
    folder, config, _ = tiny_runs[name]
    out = tmp_path / "encoder.onnx"
    assert main([str(folder), "--to", str(out), "--head", "projector"]) == 0
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    props = {p.key: p.value for p in model.metadata_props}
    assert props["method"] == config.method
    assert json.loads(props["config"])["widths"] == config.widths
    train_set = load_split(config, "train")
    network, _ = trained_network(tiny_runs[name])
    images = images_for(train_set.images.shape[1:3])
    features, embeddings = evaluation_outputs(network, images, train_set.mean, train_set.std)
    got_features, got_embeddings = onnx_outputs(out, images)
    assert got_features.shape == (64, parse_dims(config.widths)[-1])
    assert_close(got_features, features)
    assert_close(got_embeddings, embeddings)


def test_onnx_without_head_has_only_features(tiny_runs, tmp_path):
    folder = tiny_runs["tiny"][0]
    out = export_run(folder, tmp_path / "encoder.onnx")
    assert [o.name for o in onnx.load(str(out)).graph.output] == ["features"]


def test_onnx_refuses_another_image_size(tiny_runs, tmp_path):
    out = export_run(tiny_runs["tiny"][0], tmp_path / "encoder.onnx")
    with pytest.raises(Exception, match="images"):
        onnx_outputs(out, images_for((20, 20), count=2))


def with_nontrivial_statistics(network, seed=1):
    """Running statistics away from 0 and 1, so eval-mode batch norm is really checked."""
    rng = np.random.default_rng(seed)
    for name, buffer in network.named_buffers().items():
        size = buffer.data.shape
        if name.endswith("running_mean"):
            buffer.data[...] = rng.normal(0, 0.3, size)
        else:
            buffer.data[...] = rng.uniform(0.5, 2.0, size)
    for name, parameter in network.named_parameters().items():
        if name.endswith(("gamma", "beta")):
            parameter.data[...] += rng.normal(0, 0.2, parameter.data.shape)
    return network


@pytest.mark.slow
@pytest.mark.parametrize(
    "preset, size, mean, std",
    [
        ("shapes", (32, 32), (0.3, 0.4, 0.5), (0.2, 0.25, 0.3)),
        ("cifar10", (32, 32), cifar10.MEAN, cifar10.STD),
    ],
)
def test_onnx_and_safetensors_of_the_presets_networks(tmp_path, preset, size, mean, std):
    """The shapes and cifar10 presets' networks, untrained, through both files."""

    backend.set_backend("numpy")
    config = Config.preset(preset)
    network = with_nontrivial_statistics(build_model(config))
    images = images_for(size, count=64)
    features, embeddings = evaluation_outputs(network, images, mean, std)

    model = onnx_model(network.encoder, config, mean, std, size, network.projector)
    onnx.checker.check_model(model)
    (tmp_path / "net.onnx").write_bytes(model.SerializeToString())
    got_features, got_embeddings = onnx_outputs(tmp_path / "net.onnx", images)
    assert_close(got_features, features)
    assert_close(got_embeddings, embeddings)

    path = tmp_path / "net.safetensors"
    write_safetensors(path, network.encoder, config, mean, std, size, network.projector)
    got_features, got_embeddings = torch_outputs(path, images, head=True)
    assert_close(got_features, features)
    assert_close(got_embeddings, embeddings)


# The PyTorch replica of docs/EXPORT.md, word for word.
TORCH_REPLICA = '''
import torch
from torch import nn


class Encoder(nn.Module):
    """tinybt's encoder: conv3x3-BN-ReLU blocks, global average pooling. (N, 3, H, W) -> (N, F)"""

    def __init__(self, widths, strides, blocks):
        super().__init__()
        layers, channels = [], 3
        for width, stride in zip(widths, strides):
            for block in range(blocks):
                layers += [
                    nn.Conv2d(channels, width, 3, stride if block == 0 else 1, 1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(),
                ]
                channels = width
        self.layers = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x):
        return self.layers(x)


class Projector(nn.Module):
    """tinybt's projector: (Linear, BN, ReLU) per width but the last, Linear. (N, F) -> (N, D)"""

    def __init__(self, in_features, dims):
        super().__init__()
        layers, sizes = [], (in_features, *dims)
        for width_in, width_out in zip(sizes[:-2], sizes[1:-1]):
            linear = nn.Linear(width_in, width_out, bias=False)
            layers += [linear, nn.BatchNorm1d(width_out), nn.ReLU()]
        layers.append(nn.Linear(sizes[-2], sizes[-1], bias=False))
        self.layers = nn.Sequential(*layers)

    def forward(self, y):
        return self.layers(y)


class Network(nn.Module):
    """The encoder, and the projector when the file holds one (--head projector)."""

    def __init__(self, config, head=False):
        super().__init__()
        dims = lambda text: [int(part) for part in text.split("-")]
        self.encoder = Encoder(dims(config["widths"]), dims(config["strides"]), config["blocks"])
        if head:
            self.projector = Projector(dims(config["widths"])[-1], dims(config["projector"]))
'''


def torch_outputs(path, images, head):
    """What the replica of docs/EXPORT.md gives for the file at `path`: (features, embeddings)."""
    torch = pytest.importorskip("torch")
    from safetensors import safe_open
    from safetensors.torch import load_file

    namespace = {}
    exec(TORCH_REPLICA, namespace)
    with safe_open(str(path), "pt") as file:
        info = file.metadata()
    config = json.loads(info["config"])
    network = namespace["Network"](config, head=head)
    network.load_state_dict(load_file(str(path)), strict=True)
    network.eval()
    mean = torch.tensor(json.loads(info["mean"])).view(1, 3, 1, 1)
    std = torch.tensor(json.loads(info["std"])).view(1, 3, 1, 1)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        features = network.encoder((x - mean) / std)
        embeddings = network.projector(features) if head else None
    return features.numpy(), None if embeddings is None else embeddings.numpy()


@pytest.mark.parametrize("name", ["tiny", "variant"])
def test_safetensors_loads_into_the_pytorch_replica(tiny_runs, tmp_path, name):
    folder, config, _ = tiny_runs[name]
    out = tmp_path / "encoder.safetensors"
    assert main([str(folder), "--to", str(out), "--head", "projector"]) == 0
    train_set = load_split(config, "train")
    network, _ = trained_network(tiny_runs[name])
    images = images_for(train_set.images.shape[1:3])
    features, embeddings = evaluation_outputs(network, images, train_set.mean, train_set.std)
    got_features, got_embeddings = torch_outputs(out, images, head=True)
    assert_close(got_features, features)
    assert_close(got_embeddings, embeddings)
    out = export_run(folder, tmp_path / "encoder_only.safetensors")
    got_features, _ = torch_outputs(out, images, head=False)
    assert_close(got_features, features)


DOCS = Path(__file__).parents[1] / "docs" / "EXPORT.md"


def test_the_replica_is_the_one_in_the_docs():
    assert TORCH_REPLICA.strip() in DOCS.read_text()


def test_the_docs_code_runs(tiny_runs, tmp_path, monkeypatch):
    """Every Python block of docs/EXPORT.md, in order, beside the two files it names."""
    pytest.importorskip("torch")
    folder = tiny_runs["tiny"][0]
    for suffix in ("onnx", "safetensors"):
        export_run(folder, tmp_path / f"encoder.{suffix}")
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for block in re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.DOTALL):
        exec(block, namespace)
    assert namespace["features"].shape == (8, 16)


# Bad input: one line each.


def one_line_error(capsys, argv):
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1
    return error


def test_a_folder_without_checkpoint(tmp_path, capsys):
    error = one_line_error(capsys, [str(tmp_path), "--to", str(tmp_path / "e.onnx")])
    assert "no checkpoint" in error


def test_an_unknown_suffix(tiny_runs, tmp_path, capsys):
    error = one_line_error(capsys, [str(tiny_runs["tiny"][0]), "--to", str(tmp_path / "e.pt")])
    assert "unknown suffix" in error


def test_an_unwritable_destination(tiny_runs, tmp_path, capsys):
    to = tmp_path / "missing" / "e.onnx"
    error = one_line_error(capsys, [str(tiny_runs["tiny"][0]), "--to", str(to)])
    assert "cannot write" in error


def unfinished_copy(run, tmp_path, change):
    """A copy of the run's checkpoint with its meta (or its arrays) changed by `change`."""
    with np.load(run / "checkpoint.npz") as archive:
        arrays = dict(archive)
    meta = json.loads(str(arrays["meta"]))
    change(meta, arrays)
    arrays["meta"] = np.array(json.dumps(meta))
    folder = tmp_path / "copy"
    folder.mkdir()
    np.savez(folder / "checkpoint.npz", **arrays)
    return folder


def test_an_unfinished_run_needs_the_flag(tiny_runs, tmp_path, capsys):
    def stop_early(meta, arrays):
        meta["epoch"] = meta["config"]["epochs"] - 1

    folder = unfinished_copy(tiny_runs["tiny"][0], tmp_path, stop_early)
    error = one_line_error(capsys, [str(folder), "--to", str(tmp_path / "e.onnx")])
    assert "unfinished" in error and "--unfinished" in error
    assert main([str(folder), "--to", str(tmp_path / "e.onnx"), "--unfinished"]) == 0


def test_a_non_finite_checkpoint(tiny_runs, tmp_path, capsys):
    def poison(meta, arrays):
        name = next(k for k in arrays if k.startswith("model/"))
        arrays[name] = arrays[name].copy()
        arrays[name].flat[0] = np.nan

    folder = unfinished_copy(tiny_runs["tiny"][0], tmp_path, poison)
    error = one_line_error(capsys, [str(folder), "--to", str(tmp_path / "e.onnx")])
    assert "NaN or inf" in error


def test_missing_packages_name_the_extra(tiny_runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    for suffix in ("onnx", "safetensors"):
        with pytest.raises(TinyBTError, match=r'pip install -e "\.\[export\]"'):
            export_run(tiny_runs["tiny"][0], tmp_path / f"e.{suffix}")


def test_the_program_answers_in_one_line(tmp_path):
    """As a user runs it: exit status 2 and one `error:` line, no traceback."""
    command = [sys.executable, "-m", "tinybt.export", str(tmp_path), "--to", "e.onnx"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: no checkpoint") and result.stderr.count("\n") == 1
