"""Module behaviour: parameter names, modes, gradients, saving and loading, layer sizes."""

import numpy as np
import pytest

from tinybt import backend, nn
from tinybt.errors import TinyBTError
from tinybt.tensor import Tensor

from .conftest import assert_close


class Net(nn.Module):
    """A module with a child, a list of children and a Sequential: every way names arise."""

    def __init__(self, rng):
        self.stem = nn.Conv2d(3, 4, 3, padding=1, bias=False, rng=rng)
        self.blocks = [nn.BatchNorm2d(4), nn.ReLU()]
        self.head = nn.Sequential(nn.GlobalAvgPool2d(), nn.Linear(4, 2, rng=rng))

    def forward(self, x):
        x = self.stem(x.transpose(1, 2, 3, 0))  # (N, C, H, W) images -> (C, H, W, N)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def images(seed=0):
    return Tensor(np.random.default_rng(seed).standard_normal((4, 3, 5, 5)).astype(np.float32))


def test_named_parameters_names_and_order():
    net = Net(backend.rng(0))
    assert list(net.named_parameters()) == [
        "stem.weight",
        "blocks.0.gamma",
        "blocks.0.beta",
        "head.1.weight",
        "head.1.bias",
    ]
    assert list(net.named_buffers()) == ["blocks.0.running_mean", "blocks.0.running_var"]
    assert net.parameters() == list(net.named_parameters().values())
    assert all(p.requires_grad for p in net.parameters())


def test_same_seed_same_weights():
    a, b = Net(backend.rng(7)).state_dict(), Net(backend.rng(7)).state_dict()
    assert all(np.array_equal(a[name], b[name]) for name in a)
    assert all(value.dtype == np.float32 for value in a.values())


@pytest.mark.parametrize(
    "layer, count",
    [
        (nn.Linear(3, 4), 3 * 4 + 4),
        (nn.Linear(3, 4, bias=False), 3 * 4),
        (nn.Conv2d(3, 8, 3), 8 * 3 * 3 * 3 + 8),
        (nn.Conv2d(3, 8, (3, 1), bias=False), 8 * 3 * 3 * 1),
        (nn.BatchNorm1d(5), 2 * 5),
        (nn.BatchNorm2d(5, affine=False), 0),
    ],
)
def test_parameter_counts(layer, count):
    assert sum(p.data.size for p in layer.parameters()) == count


def test_initialisation_is_uniform_within_one_over_sqrt_fan_in():
    conv = nn.Conv2d(4, 16, 3, rng=backend.rng(0))
    bound = 1 / np.sqrt(4 * 3 * 3)
    for name, value in conv.state_dict().items():
        assert np.abs(value).max() <= bound, f"{name} outside ±1/sqrt(fan_in)"
        assert np.abs(value).max() > 0.8 * bound, f"{name} does not fill ±1/sqrt(fan_in)"


def test_train_and_eval_reach_every_module():
    net = Net(backend.rng(0))
    modules = [net, net.stem, *net.blocks, net.head, *net.head]
    assert net.eval() is net
    assert not any(m.training for m in modules)
    net.train()
    assert all(m.training for m in modules)


def test_zero_grad_clears_every_gradient():
    net = Net(backend.rng(0))
    net(images()).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_running_statistics_change_only_in_training():
    bn = nn.BatchNorm2d(3)
    x = Tensor(5 + 2 * np.random.default_rng(0).standard_normal((3, 4, 4, 8)))  # (C, H, W, N)
    bn.eval()
    bn(x)
    assert_close(bn.running_mean.data, np.zeros(3), what="running mean after an eval step")
    assert_close(bn.running_var.data, np.ones(3), what="running var after an eval step")
    bn.train()
    bn(x)
    values = x.numpy().reshape(3, -1)
    assert_close(bn.running_mean.data, 0.1 * values.mean(axis=1), rtol=1e-5)
    assert_close(bn.running_var.data, 0.9 + 0.1 * values.var(axis=1, ddof=1), rtol=1e-5)


def test_eval_mode_uses_running_statistics():
    bn = nn.BatchNorm1d(2, affine=False).eval()
    bn.running_mean.data[...] = backend.to_device([1.0, -2.0])
    bn.running_var.data[...] = backend.to_device([4.0, 0.25])
    out = bn(Tensor(np.array([[3.0, -2.0]], dtype=np.float32)))  # one row: no batch statistics
    assert_close(out.data, [[2 / np.sqrt(4 + 1e-5), 0.0]], rtol=1e-6)


def test_save_and_load_restore_identical_outputs(tmp_path):
    net = Net(backend.rng(0))
    net(images())  # a training step, so the running statistics are not their initial values
    net.eval()
    expected = net(images(1)).numpy()
    net.save(tmp_path / "net.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["net.npz"], "no temporary file left behind"
    other = Net(backend.rng(1)).eval()
    assert not np.allclose(other(images(1)).numpy(), expected)
    other.load(tmp_path / "net.npz")
    assert_close(other(images(1)).data, expected, rtol=0, atol=0, what="outputs after load")


def test_state_dict_is_a_copy():
    linear = nn.Linear(2, 2, rng=backend.rng(0))
    state = linear.state_dict()
    linear.weight.data += 1
    assert not np.allclose(state["weight"], linear.weight.numpy())


def test_load_state_dict_names_a_wrong_name():
    state = nn.Linear(2, 3, rng=backend.rng(0)).state_dict()
    state["scale"] = state.pop("bias")
    with pytest.raises(TinyBTError, match=r"missing \['bias'\], unexpected \['scale'\]"):
        nn.Linear(2, 3).load_state_dict(state)


def test_load_state_dict_names_a_wrong_shape_and_changes_nothing():
    target = nn.Linear(2, 3, rng=backend.rng(0))
    before = target.state_dict()
    state = nn.Linear(3, 2, rng=backend.rng(1)).state_dict()
    state["bias"] = np.zeros(3, np.float32)  # fits, but the weight does not
    with pytest.raises(TinyBTError, match=r"'weight' has shape \(3, 2\) in the state but \(2, 3\)"):
        target.load_state_dict(state)
    assert all(np.array_equal(before[k], v) for k, v in target.state_dict().items())


def test_load_of_a_file_that_is_not_npz_says_so(tmp_path):
    path = tmp_path / "weights.npz"
    path.write_text("not an archive")
    with pytest.raises(TinyBTError, match="give an .npz file written by save"):
        nn.Linear(2, 3).load(path)


def test_astype_converts_parameters_and_buffers():
    bn = nn.BatchNorm1d(3).astype("float64")
    assert {str(t.dtype) for t in [*bn.parameters(), *bn.named_buffers().values()]} == {"float64"}


def test_sequential_indexing_iteration_and_forward():
    first, second = nn.Linear(3, 4, rng=backend.rng(0)), nn.ReLU()
    model = nn.Sequential(first, second, nn.Flatten())
    assert len(model) == 3 and model[0] is first and model[-2] is second
    assert list(model)[:2] == [first, second]
    head = model[:2]
    assert isinstance(head, nn.Sequential) and list(head) == [first, second]
    assert list(model.named_parameters()) == ["0.weight", "0.bias"]
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3)))
    assert_close(model(x).data, second(first(x)).data)


def test_sequential_rejects_what_is_not_a_module():
    with pytest.raises(TypeError, match="Sequential takes Modules, got function at position 1"):
        nn.Sequential(nn.ReLU(), lambda x: x)


def test_layers_reject_the_wrong_layout():
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\) needs \(C, H, W, N\) input"):
        nn.BatchNorm2d(3)(Tensor(np.zeros((4, 3))))
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\) needs \(C, H, W, N\) input"):
        nn.BatchNorm2d(3)(Tensor(np.zeros((4, 3, 5, 5))))  # (N, C, H, W): the batch first
    with pytest.raises(ValueError, match="more than one value per feature"):
        nn.BatchNorm1d(3)(Tensor(np.zeros((1, 3))))
    with pytest.raises(ValueError, match=r"conv2d needs x \(C, H, W, N\)"):
        nn.Conv2d(3, 4, 3)(Tensor(np.zeros((1, 3, 5, 5))))  # (N, C, H, W): the batch first


def test_pooling_and_flatten_shapes():
    x = Tensor(np.zeros((3, 8, 6, 2)))  # (C, H, W, N)
    assert nn.MaxPool2d(2)(x).shape == (3, 4, 3, 2)
    assert nn.AvgPool2d(3, stride=2)(x).shape == (3, 3, 2, 2)
    assert nn.GlobalAvgPool2d()(x).shape == (2, 3)
    assert nn.Flatten()(Tensor(np.zeros((2, 3, 8, 6)))).shape == (2, 3 * 8 * 6)
