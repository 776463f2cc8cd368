"""Hooks: captured activations are the real ones, and no hook outlives its `with` block."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import labkit
from labkit.hooks import capture, embedding_layers, layer_names, penultimate_layer


def _n_hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


class StudentNet(nn.Module):
    """The kind of model a student writes: functional activations, no kit conventions."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 32)
        self.fc2 = nn.Linear(32, 16)
        self.out = nn.Linear(16, 10)

    def forward(self, x):
        return self.out(F.relu(self.fc2(F.relu(self.fc1(x.flatten(1))))))


def test_capture_equals_manual_forward_on_a_deep_mlp():
    torch.manual_seed(1)
    model = labkit.build_model("deep-mlp", (64,), 10, seed=3).eval()
    # Non-trivial BN statistics, so the manual computation exercises every term.
    for name in model.embedding_layers:
        bn = getattr(model, name).bn
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(32, 64)
    with capture(model, ["hidden1", "hidden2", "hidden2.linear", "head"]) as acts:
        logits = model(x)

    def block(h, blk):  # linear (no bias) -> batch norm in eval mode -> ReLU, by hand
        z = h @ blk.linear.weight.T
        z = (z - blk.bn.running_mean) / torch.sqrt(blk.bn.running_var + blk.bn.eps)
        return torch.clamp(z * blk.bn.weight + blk.bn.bias, min=0), h @ blk.linear.weight.T

    h1, _ = block(x, model.hidden1)
    h2, z2 = block(h1, model.hidden2)
    torch.testing.assert_close(acts["hidden1"], h1, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(acts["hidden2"], h2, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(acts["hidden2.linear"], z2, rtol=1e-5, atol=1e-6)
    assert torch.equal(acts["head"], logits)
    assert acts["hidden1"].shape == (32, 128) and not acts["hidden1"].requires_grad


def test_capture_works_on_a_students_own_module():
    model = StudentNet().eval()
    x = torch.randn(5, 1, 8, 8)
    with capture(model, "fc1") as acts:
        model(x)
    torch.testing.assert_close(acts["fc1"], x.flatten(1) @ model.fc1.weight.T + model.fc1.bias)
    assert layer_names(model) == ["fc1", "fc2", "out"]
    assert penultimate_layer(model) == "fc2"


def test_no_hook_remains_after_normal_exit_or_exception():
    model = labkit.build_model("cnn", (1, 28, 28), 10)
    users_own = model.head.register_forward_hook(lambda *a: None)  # must survive
    before = _n_hooks(model)
    with capture(model, model.embedding_layers + ["head"]) as acts:
        assert _n_hooks(model) == before + 4
        model.eval()(torch.randn(2, 1, 28, 28))
    assert set(acts) == {"block1", "block2", "embed", "head"}
    assert _n_hooks(model) == before == 1

    with pytest.raises(RuntimeError), capture(model, ["block1", "embed"]):
        model(torch.randn(2, 3, 28, 28))  # wrong channel count: the forward pass raises
    assert _n_hooks(model) == 1
    users_own.remove()
    assert _n_hooks(model) == 0


def test_unknown_layer_name_suggests_the_right_one():
    model = labkit.build_model("mlp", (64,), 10)
    with pytest.raises(KeyError, match=r"'hidden2'.*layer_names"), capture(model, ["hiden2"]):
        pass
    assert _n_hooks(model) == 0


def test_all_layers_of_the_deep_mlp_have_one_entry_each_with_the_right_shape(deep_run, digits):
    model, snaps = deep_run
    assert snaps.layer_names == ["hidden1", "hidden2", "hidden3", "hidden4", "hidden5"]
    for name in snaps.layer_names:
        assert snaps.embeddings[name].shape == (31, len(digits.probe_index), 128)
        assert snaps.embeddings[name].dtype == "float32"
    with capture(model, embedding_layers(model)) as acts:
        model.eval()(digits.x_probe[:7])
    assert [tuple(a.shape) for a in acts.values()] == [(7, 128)] * 5


def test_layer_discovery_on_plain_sequential_and_kit_models():
    seq = nn.Sequential(
        nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3)
    )
    assert embedding_layers(seq) == ["1", "4"]  # the activation after each weighted layer
    assert penultimate_layer(seq) == "4"
    assert penultimate_layer(labkit.build_model("cnn", (3, 32, 32), 10)) == "embed"
    assert embedding_layers(labkit.build_model("cnn", (3, 32, 32), 10)) == [
        "block1",
        "block2",
        "block3",
        "embed",
    ]


def test_capture_records_the_models_input_and_leaves_no_hook():
    model = labkit.build_model("mlp", (1, 8, 8), 10).eval()
    x = torch.randn(5, 1, 8, 8)
    with capture(model, ["input", "hidden1"]) as acts:
        model(x)
    assert torch.equal(acts["input"], x) and acts["hidden1"].shape == (5, 256)
    assert _n_hooks(model) == 0 and not model._forward_pre_hooks

    class Named(nn.Module):  # a model with a layer of its own called "input" keeps it
        def __init__(self):
            super().__init__()
            self.input = nn.Linear(4, 3)

        def forward(self, x):
            return self.input(x)

    named = Named()
    with capture(named, "input") as acts:
        out = named(torch.randn(2, 4))
    assert torch.equal(acts["input"], out)
