# ---
# jupyter:
#   labkit:
#     outputs: [mantis.csv, tensorboard/projector_config.pbtxt,
#       projector_by_hand/projector_config.pbtxt, figures/methods.png,
#       figures/epoch_grid.png, figures/high_lr_grid.png]
# ---

# %% [markdown] id="title"
# # Lab {{lab}}: watching a CNN learn {{name}} in the Embedding Projector{{variant}}
#
# {{badge}}
#
# A classifier turns each image into a vector, its *embedding*, one layer before the
# output. You build a small CNN for {{name}} and its training loop yourself, with a forward
# hook that records the embeddings of a fixed set of test images before training and after
# every epoch. Then the kit runs the same loop, with what a course needs on top (speed
# where the hardware allows it, a schedule, a record that saves), and we look at the
# embeddings: in TensorBoard's Embedding Projector (whose files you also write by hand), in
# an explorer inside the notebook, and with PCA, t-SNE and UMAP side by side.
#
# {{how_to_run}}

# %% id="parameters" tags=["parameters"]
# This lab's parameters: change them here, then run the notebook again.
DATASET: str = "mnist"
DATA_DIR: str = "data"
CLASSES: list[int] | None = None  # e.g. [0, 1, 2]: only these classes (None: all of them)
HAND_EPOCHS: int = 2  # epochs of the training loop you write (section 2)
HAND_TRAIN: int | None = 6000  # training images it trains on (None: the whole split)
SEEDS: int = 3  # the seeds section 2's comparisons repeat over (optional)
ABLATION_EPOCHS: int = 1  # epochs of each network of the BatchNorm comparison (optional)
EPOCHS: int = 10  # epochs of the kit's training (section 4)
LR: float = 1e-3  # the peak learning rate (AdamW)
PROBE_SIZE: int | None = 2000
SEED: int = 0
METHODS: list[str] = ["pca", "tsne", "umap"]
OUT: str = "runs/mnist"

# %% [markdown] id="the-data"
# ## 1. The data
#
# {{name}} holds {{what}}. The kit loads it whole into memory as tensors (a training loop
# then batches by indexing, no per-image work) and picks the **probe set**: a fixed,
# stratified sample of the test split. The probe set is what we embed at every epoch, so
# the same {{items}} can be followed through training. First the pixels as they are
# stored, scaled to [0, 1] (`normalise=False`):

# %% id="load-raw"
raw = labkit.load_dataset(DATASET, data_dir=DATA_DIR, probe_size=PROBE_SIZE, seed=SEED,
                          classes=CLASSES, normalise=False)
display(raw)
print(f"pixel values from {raw.x_train.min():.2f} to {raw.x_train.max():.2f}, "
      f"mean {raw.x_train.mean():.4f}, standard deviation {raw.x_train.std():.4f}")

# %% [markdown] id="standardise-intro"
# ### Exercise: standardise the inputs
#
# One pre-processing step comes before any training: **standardisation**. Every pixel is
# between 0 and 1, so the inputs are all positive and far from centred. A network's
# initial weights are drawn for inputs of mean 0 and spread 1, and gradient steps move the
# first layer's weights all the same way when every input has the same sign: standardised
# inputs train faster and more evenly. Standardise each channel (one for greyscale images,
# three for colour): subtract its mean and divide by its standard deviation, both computed
# once, over all images and pixels of the **training split only**, and apply those same two
# numbers to the test split.
#
# Write `standardise(x_train, x_test)`, where both are tensors [N, channels, height,
# width], returning the pair `(x_train, x_test)` standardised:
#
# 1. the mean and standard deviation of each channel of `x_train`, each a tensor
#    [1, channels, 1, 1] so that it broadcasts over the images
#    (`x_train.mean(dim=(0, 2, 3), keepdim=True)`, likewise `.std(...)`);
# 2. add `1e-6` to the standard deviation, so that a constant channel does not divide by 0;
# 3. return `((x_train - mean) / std, (x_test - mean) / std)`.
#
# The end of the cell applies it to `raw`, and a question below asks you to justify the
# "training split only".

# %% id="standardise" exercise
import torch


def standardise(x_train: torch.Tensor, x_test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both splits standardised per channel with the training split's mean and std."""
    ### BEGIN SOLUTION
    mean = x_train.mean(dim=(0, 2, 3), keepdim=True)
    std = x_train.std(dim=(0, 2, 3), keepdim=True) + 1e-6
    return (x_train - mean) / std, (x_test - mean) / std
    ### END SOLUTION


x_train, x_test = standardise(raw.x_train, raw.x_test)
print(f"training split: mean {x_train.mean():.4f}, standard deviation {x_train.std():.4f}; "
      f"test split: mean {x_test.mean():.4f}, standard deviation {x_test.std():.4f}")

# %% id="standardise-check" test points=2
import torch

# Checked on the first 10,000 training and 2,000 test images: quicker than the whole splits,
# and it checks the same thing, since standardise must work on any pair of splits.
part_train, part_test = raw.x_train[:10_000], raw.x_test[:2_000]
mine = standardise(part_train, part_test)
assert isinstance(mine, tuple) and len(mine) == 2, \
    "standardise should return the pair (x_train, x_test)"
mine_train, mine_test = mine
assert mine_train.shape == part_train.shape and mine_test.shape == part_test.shape, \
    (f"shapes {tuple(mine_train.shape)} and {tuple(mine_test.shape)}, expected "
     f"{tuple(part_train.shape)} and {tuple(part_test.shape)}: keep each split's shape")
channel_mean = mine_train.mean(dim=(0, 2, 3))
channel_std = mine_train.std(dim=(0, 2, 3))
assert torch.allclose(channel_mean, torch.zeros_like(channel_mean), atol=1e-3), \
    (f"the training split's channel means are {channel_mean.tolist()}, not 0: compute the mean "
     f"from x_train alone, one per channel")
assert torch.allclose(channel_std, torch.ones_like(channel_std), atol=1e-2), \
    (f"the training split's channel standard deviations are {channel_std.tolist()}, not 1: "
     f"one mean and one std per channel, over dims (0, 2, 3), not one per pixel")
mean = part_train.mean(dim=(0, 2, 3), keepdim=True)
std = part_train.std(dim=(0, 2, 3), keepdim=True) + 1e-6
assert torch.allclose(mine_test, (part_test - mean) / std, atol=1e-4), \
    ("the test split is not standardised with the training split's mean and std: compute "
     "them once, from x_train, and apply the same two numbers to x_test")
# A channel with the same value everywhere (a border that is always black, say): std 0.
_constant = torch.full((6, 1, 3, 3), 0.5)
_flat_train, _flat_test = standardise(_constant, _constant[:2])
assert torch.isfinite(_flat_train).all() and torch.isfinite(_flat_test).all(), \
    ("a constant channel gives NaN or inf: its standard deviation is 0; add 1e-6 to the "
     "standard deviation before dividing")
### BEGIN HIDDEN TESTS
gen = torch.Generator().manual_seed(3)
a = torch.rand(40, 3, 5, 4, generator=gen) * torch.tensor([1.0, 5.0, 0.2]).view(1, 3, 1, 1)
b = torch.rand(9, 3, 5, 4, generator=gen) + 2.0
got_a, got_b = standardise(a, b)
m, s = a.mean(dim=(0, 2, 3), keepdim=True), a.std(dim=(0, 2, 3), keepdim=True) + 1e-6
assert (torch.allclose(got_a, (a - m) / s, atol=1e-5)
        and torch.allclose(got_b, (b - m) / s, atol=1e-5))
flat = torch.zeros(4, 1, 2, 2)  # a constant channel: no division by zero
assert torch.isfinite(standardise(flat, flat)[0]).all()
### END HIDDEN TESTS

# %% [markdown] id="kit-data"
# The kit's `load_dataset` does the same by default (`normalise=True`); from here on the lab
# uses its `data`. Its standard deviation divides by N rather than N - 1 and sums in 64-bit
# floats, so expect the two to differ by less than about 1e-6; a difference above 1e-4
# would mean your `standardise` computes something else.

# %% id="load-data"
data = labkit.load_dataset(DATASET, data_dir=DATA_DIR, probe_size=PROBE_SIZE, seed=SEED,
                           classes=CLASSES)
display(data)
gap = max((x_train - data.x_train).abs_().max().item(), (x_test - data.x_test).abs_().max().item())
print(f"the largest difference between your standardised pixels and the kit's: {gap:.1e}")

# %% [markdown] id="q-standardise" question
# Why are the mean and standard deviation computed from the training split only and then
# applied unchanged to the test split? What would be wrong with standardising each split
# with its own statistics, or both with the statistics of all the images together?

# %% [markdown] id="a-standardise" answer points=2
# The test split stands for images the model meets after training, one at a time: the
# pre-processing is part of the model, fixed before the test, so it may only use what
# training may use. Statistics of all the images together let the test split leak into
# the training pipeline, and the test accuracy is no longer an honest estimate of
# accuracy on new images (here the leak is tiny, the splits' means differ only in the
# third decimal, but the method is wrong, and on a class subset or data from another
# source the difference is real). Standardising each split with its own statistics
# feeds the trained network inputs shifted and scaled differently from those it was
# trained on (and would need a whole batch of new images before it could classify one).
# The same rule holds for every fitted pre-processing step: TF-IDF's vocabulary in
# Lab 2, PCA, a feature selection.

# %% [markdown] id="your-own-classifier"
# ## 2. Your own classifier and its training loop
#
# Before the kit does it for you, you build the three pieces yourself: a small CNN whose
# penultimate layer is the embedding, a forward hook that reads that layer, and a
# training loop that records the probe set with your hook before the first update and
# after every epoch.
#
# ### Exercise: a small CNN
#
# Write the class `SmallCNN(nn.Module)`. Its `__init__(self, input_shape, n_classes)`
# takes `input_shape = (channels, height, width)` (`data.input_shape`) and the number of
# classes, and builds four parts, with exactly these names (the hook, the kit and the
# tests find them by name):
#
# - `self.block1`: an `nn.Sequential` of a 3×3 convolution from `channels` to 8
#   channels with `padding=1` (keeps height and width), `nn.BatchNorm2d(8)`, `nn.ReLU()`
#   and `nn.MaxPool2d(2)` (halves height and width);
# - `self.block2`: the same from 8 to 16 channels;
# - `self.embed`: the penultimate layer, an `nn.Sequential` of `nn.Flatten()`, an
#   `nn.Linear` from the flattened output of `block2` to 64 numbers, and `nn.ReLU()`.
#   Work out the flattened size: 16 channels of `height // 4` by `width // 4` pixels;
# - `self.head`: `nn.Linear(64, n_classes)`, one score per class.
#
# `forward(self, x)` runs them in that order and returns the head's scores. The end of
# the cell builds one from `SEED`, so that every run starts from the same weights, and
# prints it. (8 and 16 channels are about LeNet-5's widths, 6 and 16, from 1998: small,
# and enough for images this small; the kit's CNN in section 3 is wider.)

# %% id="cnn" exercise
from torch import nn


class SmallCNN(nn.Module):
    """Two conv blocks, the 64-number embedding `embed`, and a linear `head`."""

    def __init__(self, input_shape: tuple[int, int, int], n_classes: int):
        super().__init__()
        ### BEGIN SOLUTION
        channels, height, width = input_shape
        self.block1 = nn.Sequential(nn.Conv2d(channels, 8, kernel_size=3, padding=1),
                                    nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2))
        self.block2 = nn.Sequential(nn.Conv2d(8, 16, kernel_size=3, padding=1),
                                    nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2))
        self.embed = nn.Sequential(nn.Flatten(),
                                   nn.Linear(16 * (height // 4) * (width // 4), 64), nn.ReLU())
        self.head = nn.Linear(64, n_classes)
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        return self.head(self.embed(self.block2(self.block1(x))))
        ### END SOLUTION


torch.manual_seed(SEED)  # the same starting weights on every run
net = SmallCNN(data.input_shape, data.n_classes)
print(net)

# %% id="cnn-check" test points=3
import torch

net_check = SmallCNN(data.input_shape, data.n_classes)
parts = dict(net_check.named_children())
for name in ("block1", "block2", "embed", "head"):
    assert name in parts, \
        f"SmallCNN has no part named {name!r} (it has {list(parts)}): assign it as self.{name}"
x = data.x_train[:8]
try:
    net_check.eval()
    with torch.no_grad(), labkit.capture(net_check, ["block1", "block2", "embed"]) as acts:
        scores = net_check(x)
except RuntimeError as err:
    raise AssertionError(
        f"SmallCNN fails on a batch of shape {tuple(x.shape)} ({str(err).splitlines()[0]}): "
        f"after two 2x2 poolings the 16 channels are height // 4 by width // 4 pixels, so "
        f"embed's Linear takes 16 * (height // 4) * (width // 4) numbers") from None
c, h, w = data.input_shape
assert tuple(acts["block1"].shape) == (8, 8, h // 2, w // 2), \
    (f"block1's output has shape {tuple(acts['block1'].shape)}, expected {(8, 8, h // 2, w // 2)} "
     f"for 8 images: 8 channels, padding=1 in the convolution, and nn.MaxPool2d(2) at the end")
assert tuple(acts["block2"].shape) == (8, 16, h // 4, w // 4), \
    (f"block2's output has shape {tuple(acts['block2'].shape)}, expected {(8, 16, h // 4, w // 4)} "
     f"for 8 images: 16 channels, and nn.MaxPool2d(2) at the end")
assert tuple(acts["embed"].shape) == (8, 64), \
    (f"embed's output has shape {tuple(acts['embed'].shape)}, expected (8, 64): "
     f"flatten, then 64 numbers")
assert (acts["embed"] >= 0).all(), "embed's output has negative numbers: end embed with nn.ReLU()"
assert tuple(scores.shape) == (8, data.n_classes), \
    (f"forward returns shape {tuple(scores.shape)}, expected (8, {data.n_classes}): "
     f"the head's scores")
assert isinstance(parts["head"], nn.Linear) and parts["head"].in_features == 64, \
    "head should be nn.Linear(64, n_classes)"
assert any(isinstance(m, nn.BatchNorm2d) for m in parts["block1"].modules()), \
    "block1 has no nn.BatchNorm2d(8) after its convolution"
### BEGIN HIDDEN TESTS
for shape, k in (((3, 32, 32), 10), ((1, 28, 28), 3), ((1, 8, 8), 5)):
    other = SmallCNN(shape, k).eval()
    with torch.no_grad(), labkit.capture(other, ["embed"]) as got:
        out = other(torch.randn(3, *shape))
    assert tuple(out.shape) == (3, k) and tuple(got["embed"].shape) == (3, 64)
    assert labkit.penultimate_layer(other) == "embed"
    assert sum(isinstance(m, nn.MaxPool2d) for m in other.modules()) == 2
    assert sum(isinstance(m, nn.Conv2d) for m in other.modules()) == 2
### END HIDDEN TESTS

# %% [markdown] id="hook-intro"
# ### Exercise: a forward hook by hand
#
# `net(x)` returns only the head's scores. To read what a layer in the middle computes,
# PyTorch lets you attach a *forward hook* to any module: a function
# `hook(module, inputs, output)` that it calls every time that module has computed its
# output. `module.register_forward_hook(hook)` attaches it and returns a *handle*;
# `handle.remove()` takes it off again. Two details matter:
#
# - **Keep `output.detach()`, not `output`.** Computed with autograd on, as in a training
#   step, a layer's output carries the autograd graph of everything computed before it.
#   Keeping the tensor keeps that graph, and the intermediate tensors it refers to, alive
#   in memory: a hook left on during training, or a probe pass run with autograd on at
#   every epoch, would pile them up. `.detach()` gives the same numbers with no graph
#   behind them, wherever the hook runs.
# - **Remove the hook, even when the forward pass fails.** A forgotten hook stays on the
#   module and runs on *every later* forward pass, training included: it keeps recording,
#   costs time and holds memory, and the next one you register records alongside it. Hence
#   `try: ... finally: handle.remove()`.
#
# Write `capture_by_hand(model, layer_name, x)`, which returns the output of the layer
# named `layer_name` (a name from `labkit.layer_names(model)`, which section 3 shows) when
# `model` runs on the batch `x`:
#
# 1. look the module up with `dict(model.named_modules())[layer_name]`;
# 2. register a forward hook on it that stores `output.detach()` (in a dict or list that
#    your function creates);
# 3. put the model in evaluation mode (`model.eval()`: batch normalisation uses its running
#    statistics and dropout is off, so the output does not depend on the rest of the batch)
#    and run `model(x)` inside `with torch.no_grad():`;
# 4. remove the handle in a `finally` block, and return the stored tensor.
#
# The end of the cell calls it with your `net`, the penultimate layer's name `layer`
# (`labkit.penultimate_layer(net)`, which finds `embed`: the last layer before the head)
# and the first 256 probe images `data.x_probe[:256]` (a tensor [256, channels, height,
# width]), and keeps the result in `by_hand`: a tensor [256, 64].

# %% id="hook" exercise
import torch


def capture_by_hand(model, layer_name: str, x: torch.Tensor) -> torch.Tensor:
    """The output of the layer `layer_name` when `model` runs on `x`; no hook left behind."""
    ### BEGIN SOLUTION
    module = dict(model.named_modules())[layer_name]
    stored = {}

    def hook(_module, _inputs, output):
        stored["output"] = output.detach()  # the numbers, without the autograd graph

    handle = module.register_forward_hook(hook)
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()  # also when model(x) raised
        model.train(was_training)
    return stored["output"]
    ### END SOLUTION


layer = labkit.penultimate_layer(net)
by_hand = capture_by_hand(net, layer, data.x_probe[:256])
print(f"{layer!r}: {tuple(by_hand.shape)}")


# %% id="hook-check" test points=3
import torch
from torch import nn

# Checked on the kit's CNN, so that this test does not depend on your SmallCNN.
kit_cnn = labkit.build_model("cnn", data.input_shape, data.n_classes, seed=SEED)
layer = labkit.penultimate_layer(kit_cnn)
module = dict(kit_cnn.named_modules())[layer]
x = data.x_probe[:256]
mine = capture_by_hand(kit_cnn, layer, x)
assert isinstance(mine, torch.Tensor), \
    f"capture_by_hand returned {type(mine).__name__}: return the tensor your hook stored"
assert len(module._forward_hooks) == 0, \
    f"a hook is still on {layer!r}: call handle.remove() in a finally block"
kit_cnn.eval()
with torch.no_grad(), labkit.capture(kit_cnn, [layer]) as acts:
    kit_cnn(x)
assert mine.shape == acts[layer].shape, \
    (f"shape {tuple(mine.shape)}, expected {tuple(acts[layer].shape)}: store the hook's "
     f"`output` (its third argument), of the module named {layer!r}")
assert not mine.requires_grad, "the stored tensor still requires grad: store output.detach()"
assert torch.allclose(mine, acts[layer], atol=1e-6), \
    "not the numbers labkit.capture records: call model.eval() before the forward pass"


class _GradAlwaysOn(nn.Module):
    """The kit's CNN with autograd switched on inside its forward pass, as in a training step:
    there, torch.no_grad() outside does not keep the graph away."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        with torch.enable_grad():
            return self.inner(x)


# A forward pass that fails (one channel too many) must leave no hook behind either.
import contextlib

with contextlib.suppress(Exception):
    capture_by_hand(kit_cnn, layer, torch.zeros(2, data.input_shape[0] + 1, *data.input_shape[1:]))
assert len(module._forward_hooks) == 0, \
    ("a forward pass that raised left your hook on the layer: remove the handle in a finally "
     "block, so that it goes whatever happens")
_kept = capture_by_hand(_GradAlwaysOn(kit_cnn), f"inner.{layer}", x[:8])
assert not _kept.requires_grad and _kept.grad_fn is None, \
    ("when autograd records the forward pass (as in training), your hook keeps the graph: store "
     "output.detach(), not output, so that no_grad() is not what keeps memory free")
### BEGIN HIDDEN TESTS
# Another layer and another batch.
other = dict(kit_cnn.named_modules())["block1"]
x2 = data.x_probe[-7:]
mine2 = capture_by_hand(kit_cnn, "block1", x2)
kit_cnn.eval()
with torch.no_grad(), labkit.capture(kit_cnn, ["block1"]) as acts2:
    kit_cnn(x2)
assert mine2.shape == acts2["block1"].shape and torch.allclose(mine2, acts2["block1"], atol=1e-6)
assert not mine2.requires_grad and mine2.grad_fn is None
assert len(other._forward_hooks) == 0
# A forward pass that fails (one channel too many) must leave no hook behind.
import contextlib

wrong = torch.zeros(2, data.input_shape[0] + 1, *data.input_shape[1:])
with contextlib.suppress(Exception):
    capture_by_hand(kit_cnn, layer, wrong)
assert len(module._forward_hooks) == 0, "a failed forward pass left the hook on the layer"
### END HIDDEN TESTS

# %% [markdown] id="hook-compare-intro"
# The kit's `labkit.capture` is the same idea as a context manager: hooks on when the
# `with` block starts, off when it ends, also on error. It gives the same numbers as
# `by_hand`:

# %% id="hook-compare"
layer = labkit.penultimate_layer(net)
net.eval()
with torch.no_grad(), labkit.capture(net, [layer]) as acts:
    net(data.x_probe[:256])
print(f"{layer!r}: {tuple(by_hand.shape)} by hand, {tuple(acts[layer].shape)} with "
      f"labkit.capture, equal: {torch.allclose(by_hand, acts[layer], atol=1e-6)}")
print("hooks left on the layer:", len(dict(net.named_modules())[layer]._forward_hooks))

# %% [markdown] id="detach-demo-intro"
# ### What `.detach()` saves
#
# Your hook ran under `torch.no_grad()`, so no graph was recorded anyway. During training
# it is: every operation on a tensor that depends on the weights adds a node to the
# autograd graph, and a node keeps the tensors its backward step will need (a layer's
# input, the output of a ReLU, batch-norm statistics). The cell below runs the first 256
# probe images once with autograd on, as in a training step, and keeps the penultimate
# layer's output twice: as it is, and detached. `graph_behind(t)` walks the graph back from
# `t.grad_fn` and adds up the bytes of the tensors its nodes saved for the backward pass
# (the weights are left out: the model holds them in any case).

# %% id="detach-demo"
def graph_behind(t: torch.Tensor) -> tuple[int, int]:
    """The number of nodes in the autograd graph behind t, and the bytes its nodes saved."""
    weights = {p.data_ptr() for p in net.parameters()}
    nodes, todo, saved = set(), [t.grad_fn], {}
    while todo:
        node = todo.pop()
        if node is None or node in nodes:
            continue
        nodes.add(node)
        for attr in dir(node):  # a node shows what it saved as _saved_* attributes
            if not attr.startswith("_saved_"):
                continue
            try:
                value = getattr(node, attr)
            except RuntimeError:  # already freed by a backward pass
                continue
            for v in value if isinstance(value, (tuple, list)) else [value]:
                if isinstance(v, torch.Tensor) and v.data_ptr() not in weights:
                    saved[(v.data_ptr(), tuple(v.shape))] = v.nbytes
        todo += [fn for fn, _ in node.next_functions]
    return len(nodes), sum(saved.values())


kept = {}


def keep_both(_module, _inputs, output):
    kept["output"] = output  # what a hook without .detach() would store
    kept["output.detach()"] = output.detach()


handle = dict(net.named_modules())[layer].register_forward_hook(keep_both)
try:
    net.eval()  # eval mode changes no running statistics; autograd still records
    with torch.enable_grad():
        net(data.x_probe[:256])
finally:
    handle.remove()
for name, t in kept.items():
    n_nodes, n_bytes = graph_behind(t)
    print(f"{name:>16}: requires_grad={t.requires_grad!s:5}  "
          f"grad_fn={t.grad_fn.name() if t.grad_fn is not None else None}  "
          f"graph: {n_nodes} nodes, {n_bytes / 2**20:.2f} MiB saved")
print(f"the embedding itself: {kept['output'].nbytes / 2**20:.2f} MiB")

# %% [markdown] id="q-detach" question
# A forward hook can keep a layer's `output` as it is, or `output.detach()`. The
# demonstration "What `.detach()` saves" runs 256 probe {{items}} through your network
# with autograd on, keeps the output of `embed` both ways, and prints what each holds.
# What does `.detach()` save, and what would happen if a hook kept `output` instead of
# `output.detach()` and the probe set were recorded with autograd on at every epoch of
# training?

# %% [markdown] id="a-detach" answer points=2
# `output` has `requires_grad=True` and a `grad_fn` (`ReluBackward0`, the ReLU of `embed`):
# it is the end of an autograd graph (22 nodes) that reaches back through every layer to
# the input, and that graph keeps alive what its backward step would need, the
# activations of every layer and the input batch. For 256 {{items}} that is about 26 MiB
# on MNIST (about 36 MiB on CIFAR-10), several hundred times the 0.06 MiB of the
# embedding itself; `output.detach()` holds the same numbers with no graph
# (`requires_grad=False`, `grad_fn=None`, 0 bytes). Without `.detach()`, every stored
# recording keeps its own graph: the kit's 11 recordings of 2000 probe images (epoch 0 and
# 10 epochs) would hold about 2.2 GiB on MNIST (3.0 GiB on CIFAR-10), about 200 MiB more
# with every epoch on MNIST, without bound for longer runs, bigger networks or more layers,
# until memory runs out, on a GPU first. The stored tensors would also stay connected to
# the weights: a loss computed from them later would send gradients back into the model
# through an old graph (or fail because that graph was already freed). `.detach()` keeps
# the values only.

# %% [markdown] id="q-penultimate" question
# We record the penultimate layer, the input of the classifier head, rather than the
# head's output (one score per class). What would a picture of the head's outputs lose?

# %% [markdown] id="a-penultimate" answer points=2
# The head is a linear map from the embedding (64 numbers per image in your `SmallCNN`;
# 128 on MNIST and 256 on CIFAR-10 in the kit's CNN) to 10 scores, one per class: its
# output is a projection of the embedding onto 10 directions chosen only to rank the
# classes, so most of the embedding's dimensions are dropped. After training, the scores of
# all images of a class point the same way (a nearly one-hot softmax), so a picture of them
# mostly shows the predicted class and the confidence. The penultimate layer is what the
# head reads: training must make the classes linearly separable there, but it still holds
# the differences the head ignores, so its picture shows which images the network finds
# alike, groups inside a class, and the images that sit between two classes.


# %% [markdown] id="loop-intro"
# ### Exercise: the training loop, recording the embeddings
#
# Now train `net`, and record the probe set's embedding with your `capture_by_hand`
# **before the first update** (epoch 0: the untrained network) and **after every epoch**.
# Write `train_by_hand(net, data, epochs, lr, seed, batch_size=128)`, returning the pair
# `(embeddings, history)`:
#
# - `embeddings`: a tensor [epochs + 1, probe size, 64], the output of `"embed"` on the
#   whole probe set `data.x_probe`, epoch 0 first;
# - `history`: a list with one dict per epoch `e` from 1 to `epochs`:
#   `{"epoch": e, "train_loss": ..., "test_acc": ...}`, the mean of the epoch's batch
#   losses and the accuracy on the test split `data.x_test`, `data.y_test` (`data` is the
#   function's argument: all of its test split), both plain Python floats (`loss.item()`),
#   the accuracy a share between 0 and 1.
#
# The steps:
#
# 1. `optimizer = torch.optim.AdamW(net.parameters(), lr=lr)`, and a random generator for
#    the batch order, `order_rng = torch.Generator().manual_seed(seed)` (the same `seed`,
#    the same run);
# 2. record epoch 0: the probe set's embedding, by `capture_by_hand` on chunks of 500 probe
#    images (`data.x_probe.split(500)`), joined with `torch.cat` (chunks: see step 4);
# 3. each epoch: `net.train()` (batch normalisation then normalises with each batch's own
#    statistics and updates its running ones); a new order of the training split,
#    `torch.randperm(len(data.y_train), generator=order_rng)`; for each slice of
#    `batch_size` indices of that order: the batch's scores `net(x)`, the loss
#    `F.cross_entropy(scores, y)`, then `optimizer.zero_grad()`, `loss.backward()`,
#    `optimizer.step()`;
# 4. after the epoch: `net.eval()` and, under `torch.no_grad()`, the test accuracy, in
#    chunks of 500 images (they bound the memory, and a small chunk's activations stay in
#    the CPU's fast cache: twice as fast as 2,000 images at once); then the epoch's
#    embedding, as in step 2. (In `hand_data` below the test split and the probe are the
#    same images, so your loop passes them twice; the kit records the probe during its
#    test pass, in one.)
#
# The end of the cell trains `net` for `HAND_EPOCHS` epochs at `LR`, keeping its starting
# weights in `initial` to compare with the kit afterwards. It runs on `hand_data`, a
# smaller copy of `data` that is plenty to see a loop learn, in a fraction of the time:
# its training split is the first `HAND_TRAIN` training images (6,000 by default; `None`
# keeps them all), and its test split is the probe set (2,000 test images, stratified by
# class); its own probe set is that whole new test split, so `hand_data.x_probe` holds the
# same images, in the same order, as `data.x_probe`.
# This is plain PyTorch in fp32; the cell prints how long it took, and "What the kit adds"
# below times the kit beside it on the same images.

# %% id="loop" exercise
import copy
import dataclasses
import time

import torch.nn.functional as F


def train_by_hand(net, data, epochs: int, lr: float, seed: int, batch_size: int = 128):
    """Train net with AdamW; the probe's "embed" output at epoch 0 and after every epoch."""
    ### BEGIN SOLUTION
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr)
    order_rng = torch.Generator().manual_seed(seed)

    def probe_embedding():  # in chunks of 500, as the test pass
        return torch.cat([capture_by_hand(net, "embed", x) for x in data.x_probe.split(500)])

    snapshots = [probe_embedding()]  # epoch 0: before any update
    history = []
    for epoch in range(1, epochs + 1):
        net.train()
        losses = []
        for batch in torch.randperm(len(data.y_train), generator=order_rng).split(batch_size):
            loss = F.cross_entropy(net(data.x_train[batch]), data.y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        net.eval()
        correct = 0
        with torch.no_grad():
            for start in range(0, len(data.y_test), 500):  # chunks bound the memory
                x, y = data.x_test[start:start + 500], data.y_test[start:start + 500]
                correct += (net(x).argmax(1) == y).sum().item()
        history.append({"epoch": epoch, "train_loss": sum(losses) / len(losses),
                        "test_acc": correct / len(data.y_test)})
        snapshots.append(probe_embedding())
    return torch.stack(snapshots), history
    ### END SOLUTION


hand_data = dataclasses.replace(
    data, x_train=data.x_train[:HAND_TRAIN], y_train=data.y_train[:HAND_TRAIN],
    x_test=data.x_probe, y_test=data.y_probe,  # the probe set as the test split ...
    probe_index=torch.arange(len(data.probe_index)))  # ... and as the probe, in its order
initial = copy.deepcopy(net.state_dict())  # the untrained weights, for the comparison below
started = time.perf_counter()
hand_emb, hand_history = train_by_hand(net, hand_data, epochs=HAND_EPOCHS, lr=LR, seed=SEED)
hand_seconds = time.perf_counter() - started
print(f"{HAND_EPOCHS} epochs of {len(hand_data.y_train):,} training images in "
      f"{hand_seconds:.1f} s, tested on {len(hand_data.y_test):,}; "
      f"embeddings {tuple(hand_emb.shape)}")
pd.DataFrame(hand_history).set_index("epoch").round(4)

# %% id="loop-check" test points=3
import torch

n_probe = len(hand_data.probe_index)
assert isinstance(hand_emb, torch.Tensor), \
    f"train_by_hand returned {type(hand_emb).__name__} as embeddings: torch.stack the snapshots"
assert tuple(hand_emb.shape) == (HAND_EPOCHS + 1, n_probe, 64), \
    (f"embeddings of shape {tuple(hand_emb.shape)}, expected {(HAND_EPOCHS + 1, n_probe, 64)}: "
     f"one snapshot of the whole probe set before training (epoch 0), then one per epoch")
assert not hand_emb.requires_grad, \
    "the embeddings still require grad: capture them with capture_by_hand"
# Epoch 0 must be the untrained network's embedding, as labkit.train records it.
start = SmallCNN(data.input_shape, data.n_classes)
start.load_state_dict(initial)
kit_epoch0 = labkit.train(start, hand_data, epochs=0, layers=["embed"], seed=SEED,
                          progress=False).layer("embed")[0]
assert torch.allclose(hand_emb[0], torch.from_numpy(kit_epoch0), rtol=1e-4, atol=1e-4), \
    ("epoch 0 is not the untrained network's embedding: record it with capture_by_hand "
     "before the first optimizer step")
assert not torch.allclose(hand_emb[-1], hand_emb[0]), \
    "the last embedding equals epoch 0's: the weights never changed (optimizer.step()?)"
assert isinstance(hand_history, list) and len(hand_history) == HAND_EPOCHS, \
    f"history has {len(hand_history)} entries, expected one per epoch ({HAND_EPOCHS})"
assert [row.get("epoch") for row in hand_history] == list(range(1, HAND_EPOCHS + 1)), \
    "history's epochs should be numbered 1, 2, ..."
for row in hand_history:
    assert 0 <= row["test_acc"] <= 1 and row["train_loss"] > 0, \
        f"{row}: test_acc is a share between 0 and 1, train_loss the mean batch loss"
# The last epoch's test_acc is the trained net's accuracy on the whole test split it was given.
net.eval()
_device = next(net.parameters()).device
with torch.no_grad():
    _pred = torch.cat([net(hand_data.x_test[i:i + 500].to(_device)).argmax(1).cpu()
                       for i in range(0, len(hand_data.y_test), 500)])
_acc = (_pred == hand_data.y_test.cpu()).float().mean().item()
assert abs(hand_history[-1]["test_acc"] - _acc) < 1e-6, \
    (f"the last test_acc is {hand_history[-1]['test_acc']:.4f}, but the trained net gets "
     f"{_acc:.4f} of the test split right: measure it on all of data.x_test and data.y_test "
     f"in eval() mode, after the epoch's last step")
chance = 1 / data.n_classes
assert hand_history[-1]["test_acc"] > 2 * chance, \
    (f"after {HAND_EPOCHS} epochs the test accuracy is {hand_history[-1]['test_acc']:.2f}, near "
     f"chance ({chance:.2f}): each batch needs zero_grad(), backward() and step()")
# Your loop once more, on 300 training images, watched by a hook on the whole network: it
# sees every forward pass that autograd records, in which mode it ran, and its batch's loss.
import dataclasses

from torch.nn import functional as _F

_small = dataclasses.replace(data, x_train=data.x_train[:300], y_train=data.y_train[:300],
                             x_test=data.x_test[:100], y_test=data.y_test[:100],
                             probe_index=torch.arange(20))
_row = {r.numpy().tobytes(): i for i, r in enumerate(_small.x_train.cpu())}
_seen = []  # (training mode, the batch's mean loss, its size) per training forward pass


def _watch(module, inputs, output):
    if torch.is_grad_enabled():
        rows = [_row.get(r.detach().cpu().numpy().tobytes()) for r in inputs[0]]
        if None not in rows:
            loss = _F.cross_entropy(output.detach().cpu(), _small.y_train[rows].cpu()).item()
            _seen.append((module.training, loss, len(rows)))


torch.manual_seed(1)
_net = SmallCNN(_small.input_shape, _small.n_classes)
_handle = _net.register_forward_hook(_watch)
try:
    _, _hist = train_by_hand(_net, _small, epochs=2, lr=LR, seed=5, batch_size=64)
finally:
    _handle.remove()
assert _seen and len(_seen) % 2 == 0, \
    f"{len(_seen)} training batches seen over 2 epochs: each epoch passes every training batch once"
assert all(training for training, _, _ in _seen), \
    ("some training batches ran in eval() mode: call net.train() at the start of every epoch "
     "(after the probe's eval() pass), or BatchNorm never normalises by the batch's statistics")
_per_epoch = len(_seen) // 2
for _e, _logged in enumerate(_hist):
    _batch = _seen[_e * _per_epoch:(_e + 1) * _per_epoch]
    _losses = [loss for _, loss, _ in _batch]
    _mean = sum(_losses) / len(_losses)
    _weighted = sum(loss * n for _, loss, n in _batch) / sum(n for _, _, n in _batch)
    _said = _logged["train_loss"]
    assert not np.isclose(_said, sum(_losses), rtol=1e-4) or np.isclose(_said, _mean), \
        (f"epoch {_e + 1}'s train_loss {_said:.4f} is the sum of its {len(_losses)} batch losses: "
         f"divide by the number of batches")
    assert not np.isclose(_said, _losses[-1], rtol=1e-4) or np.isclose(_said, _mean), \
        (f"epoch {_e + 1}'s train_loss {_said:.4f} is its last batch's loss: keep every batch's "
         f"loss.item() and report their mean")
    assert np.isclose(_said, _mean, rtol=1e-4) or np.isclose(_said, _weighted, rtol=1e-4), \
        (f"epoch {_e + 1}'s train_loss is {_said:.4f}, the mean of its batch losses "
         f"{_mean:.4f}: append loss.item() after every batch and report the mean")
### BEGIN HIDDEN TESTS
import dataclasses

small = dataclasses.replace(data, x_train=data.x_train[:300], y_train=data.y_train[:300],
                            x_test=data.x_test[:200], y_test=data.y_test[:200],
                            probe_index=torch.arange(40))
runs = []
for _ in range(2):
    torch.manual_seed(1)
    again = SmallCNN(small.input_shape, small.n_classes)
    runs.append(train_by_hand(again, small, epochs=2, lr=LR, seed=5, batch_size=64))
    assert len(again.embed._forward_hooks) == 0, "a hook is left on embed"
(e1, h1), (e2, h2) = runs
assert e1.shape == (3, 40, 64) and len(h1) == 2
assert torch.equal(e1, e2) and h1 == h2, "the same seed must give the same run"
with torch.no_grad():
    correct = sum((again.eval()(small.x_test).argmax(1) == small.y_test).tolist())
assert abs(h2[-1]["test_acc"] - correct / 200) < 1e-9, \
    "test_acc is not the accuracy on the test split"
### END HIDDEN TESTS

# %% [markdown] id="what-the-kit-adds"
# ### What the kit adds
#
# `labkit.train` is the same loop: AdamW and cross-entropy, `train()` and `eval()` modes,
# the probe recorded with a hook at epoch 0 and after every epoch, the data whole on the
# device and a batch one tensor index (no `DataLoader`, no Python per image), as in yours.
# What it adds:
#
# - **speed**: the probe is recorded during the test pass the accuracy needs anyway;
#   mixed precision where the hardware computes it natively (16-bit bf16 on recent CPUs
#   and GPUs, fp16 with loss scaling on older GPUs), with the weights kept in 32 bits;
#   images in the channels-last memory layout, which convolutions run fastest in;
# - **a learning-rate schedule** (a short warm-up, then a cosine decay to 0), for a better
#   network in the same number of epochs (weight decay is in both loops: AdamW's default,
#   0.01, in yours, 5e-4 in the kit's);
# - **a record you can keep**: the loss and accuracy of every epoch, the predictions and
#   probabilities next to the embeddings, in one `Snapshots` object that saves and loads;
#   a clear stop when the loss becomes NaN; exports (projector, Mantis) written so that an
#   interrupted save leaves the previous file intact.
#
# Your loop already batches by indexing whole tensors, which is where a `DataLoader` loses
# most time, so for a network as small as yours the two take about as long: mixed
# precision and the memory layout pay off on bigger networks, on hardware that computes
# 16-bit numbers natively. Your loop's time also includes PyTorch's one-off start-up,
# which the first training in a kernel pays. The cell below trains a copy of your network
# from the same starting weights with the kit, for the same `HAND_EPOCHS` on the same
# `hand_data`, and prints both times and accuracies: the same epoch 0, and an accuracy
# within a point or two of yours, either way (the kit's own tests check, on digits, that
# the two loops end within 5 points of each other after 8 epochs). From here on the lab
# uses the kit.

# %% id="kit-on-your-net"
kit_net = SmallCNN(data.input_shape, data.n_classes)
kit_net.load_state_dict(initial)
kit_snaps = labkit.train(kit_net, hand_data, epochs=HAND_EPOCHS, lr=LR, seed=SEED,
                         layers=["embed"], progress=False)
# The training's own time, as it recorded it: the same when Run all loads it from the cache.
kit_seconds = kit_snaps.history[-1]["seconds"]
print("epoch 0 the same:", np.allclose(hand_emb[0].numpy(), kit_snaps.layer("embed")[0],
                                       rtol=1e-4, atol=1e-4))
pd.DataFrame({
    "seconds": [hand_seconds, kit_seconds],
    f"test accuracy after {HAND_EPOCHS} epochs": [hand_history[-1]["test_acc"],
                                                  kit_snaps.history[-1]["test_acc"]],
}, index=["your loop", "labkit.train"]).round(3)

# %% [markdown] id="over-seeds-intro" optional
# ### One run or several, and what BatchNorm does
#
# "Within a point or two" is a claim about one run of each loop. Another seed draws other
# starting weights and another batch order, and moves both. The first cell below runs the
# comparison again for `SEEDS` seeds with `labkit.repeat(measure, seeds=...)`, which calls
# `measure(seed)` once per seed and keeps one row per seed; `paired(a, b)` then summarises
# the per-seed difference `a - b`, whose spread is the one to read, since both loops share
# each seed's starting weights (seed 0 is the run above, loaded from the run cache for the
# kit).
#
# Section 1 said standardised inputs train faster. Your network, though, normalises right
# after its first convolution (`nn.BatchNorm2d`). The second cell measures both things at
# once: your `SmallCNN` and a copy without its BatchNorm layers, each trained for
# `ABLATION_EPOCHS` epoch(s) by the kit on the standardised images and on the raw pixels in
# [0, 1], from the same starting weights, for `SEEDS` seeds. Both cells train several
# networks: a few minutes on 2 CPU cores. In a paired difference, `seeds above` counts the
# seeds where the first arm came out strictly higher (a tie is not above).

# %% id="over-seeds"
def both_loops(seed: int) -> dict[str, float]:
    """Your loop and the kit's, from the same starting weights, both with this seed."""
    torch.manual_seed(seed)
    yours = SmallCNN(data.input_shape, data.n_classes)
    start = copy.deepcopy(yours.state_dict())
    _, history = train_by_hand(yours, hand_data, epochs=HAND_EPOCHS, lr=LR, seed=seed)
    again = SmallCNN(data.input_shape, data.n_classes)
    again.load_state_dict(start)
    kit_run = labkit.train(again, hand_data, epochs=HAND_EPOCHS, lr=LR, seed=seed,
                           layers=["embed"], progress=False)
    return {"your loop": history[-1]["test_acc"], "labkit.train": kit_run.history[-1]["test_acc"]}


loops = labkit.repeat(both_loops, seeds=range(SEEDS))
display(loops.runs.round(4))
pd.DataFrame([loops.paired("labkit.train", "your loop")]).round(4)

# %% id="batchnorm-ablation"
class NoBatchNorm(SmallCNN):
    """Your SmallCNN with its BatchNorm layers replaced by the identity."""

    def __init__(self, input_shape, n_classes):
        super().__init__(input_shape, n_classes)  # the same weights, from the same seed
        for block in (self.block1, self.block2):
            for i, part in enumerate(block):
                if isinstance(part, nn.BatchNorm2d):
                    block[i] = nn.Identity()


raw_hand = dataclasses.replace(hand_data, x_train=raw.x_train[:HAND_TRAIN],
                               x_test=raw.x_probe)  # the same images, as pixels in [0, 1]
arms = {(inputs, norm): (d, cls)
        for inputs, d in (("standardised", hand_data), ("raw pixels", raw_hand))
        for norm, cls in (("BatchNorm", SmallCNN), ("no BatchNorm", NoBatchNorm))}


def ablation(seed: int) -> dict[str, float]:
    """The test accuracy of each arm after ABLATION_EPOCHS, all from this seed's weights."""
    row = {}
    for (inputs, norm), (d, cls) in arms.items():
        torch.manual_seed(seed)
        run = labkit.train(cls(data.input_shape, data.n_classes), d, epochs=ABLATION_EPOCHS,
                           lr=LR, seed=seed, layers=["embed"], progress=False)
        row[f"{norm}, {inputs}"] = run.history[-1]["test_acc"]
    return row


batchnorm = labkit.repeat(ablation, seeds=range(SEEDS))
display(batchnorm.summary.round(4))
pd.DataFrame([batchnorm.paired(f"{norm}, standardised", f"{norm}, raw pixels")
              for norm in ("BatchNorm", "no BatchNorm")]).round(4)

# %% [markdown] id="q-batchnorm" question
# Is your loop within a point or two of the kit's over the seeds, and how much does one seed
# move the difference? Do standardised inputs train faster with BatchNorm, without it, or
# both? Explain from what BatchNorm does to the output of the first convolution.

# %% [markdown] id="a-batchnorm" answer points=2
# The loops: read the paired difference `labkit.train - your loop`, its mean and its spread
# over the seeds. One seed's gap can be larger or smaller than "a point or two"; the claim is
# about the mean, and it holds if the mean is within a point or two of 0 with a spread that
# keeps it there.
#
# BatchNorm: what it undoes, and what it leaves. A convolution is linear, so standardising
# the inputs, x' = (x - m) / s with one m and s for the channel, turns the first
# convolution's output into that of the raw pixels divided by s and minus a constant per
# output channel, everywhere except at the border, where the zero padding is black for the
# raw pixels and the mean grey once standardised. BatchNorm right after it subtracts each
# channel's batch mean and divides by its standard deviation, so in the forward pass it
# undoes the standardisation, the border aside; and in the backward pass it makes the
# gradient at the convolution's output sum to zero over each channel, so a constant shift
# of the inputs no longer pushes all of a filter's weights the same way. What is left with
# BatchNorm is the border and the input's scale: how large the inputs are against the first
# weights sets how far each of AdamW's steps, of a fixed size, moves the filters. Without
# BatchNorm nothing undoes the offset: the raw pixels, all positive, give every weight of a
# filter gradients of mostly one sign, and the first epoch makes less progress. The paired
# "standardised - raw" table says which of these matters on your data: a gain without
# BatchNorm is the offset; a gain that stays with BatchNorm is the border and the scale.
# Either way, standardising costs nothing, and a network without a normalisation layer near
# its input needs it.


# %% [markdown] id="the-model-and-its-layers"
# ## 3. The kit's model and its layers
#
# The kit's CNN for {{name}} has the parts of yours (`block1`, `block2`, `embed`, `head`),
# wider, with the pooling moved before batch normalisation and the ReLU (max-pooling
# commutes with them wherever batch normalisation's scale is positive, so nearly the same
# function, computed on a quarter of the pixels). Every layer has a name:
# `labkit.layer_names(model)` lists them, containers (`block1`) and their parts
# (`block1.conv`) alike. The embedding we watch is the output of the **penultimate** layer,
# `embed`: the last representation before the classifier head, one vector per image (its
# width is printed below).

# %% id="build-model"
model = labkit.build_model("cnn", data.input_shape, data.n_classes, seed=SEED)
print(labkit.layer_names(model))
print("penultimate layer:", labkit.penultimate_layer(model),
      f"({model.head.in_features} numbers per image)")

# %% [markdown] id="train-recording-the-embeddings"
# ## 4. Train, recording the embeddings
#
# `labkit.train` records the probe set as your loop did, on the penultimate layer: at
# **epoch 0, before any update**, and after every epoch, each time with the model in
# evaluation mode and the hook removed as soon as the probe set has passed through. This
# is the lab's long cell: {{train_time}}. On Colab, a GPU runtime (*Runtime → Change
# runtime type*) makes it much faster; the kit uses the GPU by itself. Where the hardware
# supports it, the kit computes training in 16-bit numbers (bf16, or fp16 on older GPUs
# such as Colab's T4) while it keeps the weights in 32-bit (fp32): faster, and the
# accuracy stays within about a point. `snaps.meta["precision"]` shows which one it used
# (`"fp32"`, `"bf16"` or `"fp16"`); the probe set is always recorded in fp32.

# %% id="train"
snaps = labkit.train(model, data, epochs=EPOCHS, lr=LR, seed=SEED)
pd.DataFrame(snaps.history).set_index("epoch").round(4)

# %% [markdown] id="look-for-accuracy"
# **Look for:** at epoch 0 the test accuracy is chance ({{chance}}): the untrained network
# already maps images to vectors, but its head cannot read them. Expect {{expected}} at
# the end. Are the epoch-0 vectors useless, then? Ask their neighbours: the cell below
# predicts the label of each image in one half of the probe set by a vote of its 10
# nearest neighbours in the other half (`metrics.knn_accuracy`).

# %% id="knn-epochs"
emb = snaps.layer()  # [epochs + 1, probe size, embedding width]
print(f"k-NN accuracy in the embedding: epoch 0 {metrics.knn_accuracy(emb[0], snaps.labels):.2f}, "
      f"epoch {snaps.epochs} {metrics.knn_accuracy(emb[-1], snaps.labels):.2f}")

# %% [markdown] id="high-lr-intro" optional
# ### A learning rate far too high
#
# `LR` is the peak learning rate, `1e-3` by default. Before you run the next cell, predict
# what training with `lr=10` does. The cell trains a fresh kit CNN for 3 epochs at
# `lr=10`, in a run folder of its own (`OUT` keeps the good run), prints its history and
# the k-NN accuracy of every epoch, and draws its embeddings as the grid of section 8
# draws the good run's.

# %% id="high-lr"
HIGH_LR = 10.0
bad_model = labkit.build_model("cnn", data.input_shape, data.n_classes, seed=SEED)
try:
    bad = labkit.train(bad_model, data, epochs=3, lr=HIGH_LR, seed=SEED, progress=False)
except labkit.DivergedError as err:
    print(err)
else:
    bad_emb = bad.layer()
    print("k-NN accuracy per epoch:",
          [round(metrics.knn_accuracy(e, bad.labels), 2) for e in bad_emb])
    print("mean length of an embedding per epoch:",
          [round(float(np.linalg.norm(e, axis=1).mean()), 2) for e in bad_emb])
    display(pd.DataFrame(bad.history).set_index("epoch").round(4))
    plots.epoch_grid(align.trajectory(bad, method="pca"), bad, method="pca",
                     path=OUT / "figures" / "high_lr_grid.png")

# %% [markdown] id="q-high-lr" question
# What do the history table, the k-NN accuracy and the pictures of the `lr=10` run show,
# and why? When does the kit stop with an error instead of training on?

# %% [markdown] id="a-high-lr" answer points=2
# Each step moves the weights too far: the steps overshoot every minimum, the loss jumps
# up instead of down, and the weights and activations blow up. The history shows the test
# accuracy falling to about chance ({{chance}}) after the first epoch and staying there,
# with training and test losses far above the good run's. The embedding falls apart: the
# ReLUs of `embed` die one after the other (their inputs are pushed below zero for every
# image), many embeddings become the zero vector or nearly so, and the k-NN accuracy,
# well above chance at epoch 0 (the untrained network already groups similar images),
# drops towards chance. The pictures show what training did to the untrained network's
# rough grouping: it is destroyed, the classes mixed or the points squeezed onto a few
# spots, nothing like the good run's clusters. The kit trains on because the loss stays
# finite (AdamW's steps have a bounded size and batch normalisation rescales the
# activations); when the loss becomes NaN or infinite, `labkit.train` raises
# `DivergedError` with the message *training diverged at epoch N (loss nan); try a lower
# learning rate than 10*, and the cell prints that message instead.

# %% [markdown] id="the-embedding-projector"
# ## 5. The Embedding Projector
#
# We write the projector logs (one tensor per epoch, with the titles and labels as
# metadata) and open TensorBoard, shown below the cell: locally from
# http://127.0.0.1:6006 (or the next free port), on Colab through Colab's own proxy.
# The projector does not load in Safari: use Chrome or Firefox, or the explorer in
# section 6.
#
# *Optional, on Colab:* for TensorBoard in a full browser window, the kit can open an
# ngrok tunnel (ngrok is a free service that gives TensorBoard its own
# password-protected web address). It needs your ngrok token as a Colab secret; the
# steps are printed under the cell. Never paste a token into a cell: notebooks get
# shared.

# %% id="write-projector"
labkit.write_projector(snaps, OUT / "tensorboard")
tb = labkit.open_tensorboard(OUT / "tensorboard")

# %% [markdown] id="projector-how-to"
# In the Projector tab, pick `01_embed/epoch_00`, colour by `label`, and look at the PCA
# view; then pick the last epoch. Switch to T-SNE and UMAP.

# %% [markdown] id="q-epoch-0" question
# Compare the PCA view of epoch 0 (`01_embed/epoch_00`) with that of the last epoch. What
# changed? Why is epoch 0 not pure noise, although no weight has been trained yet?

# %% [markdown] id="a-epoch-0" answer points=2 only="!cifar10"
# At epoch 0 the classes overlap heavily in one cloud, though some already lean towards a
# side of their own, and the head is at chance ({{chance}} in the history table); at the
# last epoch each class forms its own cluster and the accuracy has reached its final
# value, {{expected}}. Epoch 0 is not noise because a network with random weights is
# still a fixed, smooth function: images that are alike in pixels get similar vectors.
# The k-NN accuracy printed in section 4 shows it: at epoch 0 it is already far above
# chance, because images of one class look alike in pixels. Training does not create the
# neighbourhoods from nothing; it pulls each class together and pushes the classes apart
# so that the linear head can separate them.

# %% [markdown] id="a-epoch-0-cifar10" answer points=2 only="cifar10"
# At epoch 0 all ten classes overlap in one cloud and the head is at chance ({{chance}} in
# the history table). At the last epoch the accuracy is {{expected}} for the kit's CNN
# after 10 epochs, and even then the PCA view is far less clean than on MNIST: the
# vehicles (airplane, automobile, ship, truck) pull away from the animals, but most
# classes still overlap; t-SNE and UMAP show fuzzy, touching clusters, cars next to
# trucks, cats next to dogs, and deer, horses, birds and frogs close together. Epoch 0 is
# not noise: a network with random weights is a fixed, smooth function, so photographs
# alike in pixels get similar vectors. But what two photographs share pixel by pixel is
# mostly colour and background (sky, grass, water), not the object, so the k-NN accuracy
# of section 4 at epoch 0 is far lower than on MNIST: neighbours share a background more
# often than a class. Training has to build most of the class structure, pulling each
# class together and pushing the classes apart so that the linear head can separate
# them.

# %% [markdown] id="projector-by-hand-intro" optional
# ### Exercise: the projector's files by hand
#
# What did `labkit.write_projector` write? TensorBoard's projector reads a folder holding:
#
# - `projector_config.pbtxt`, the index: a protocol buffer in text form with one
#   `embeddings { ... }` block per tensor, giving its name (shown in the dropdown), its
#   tensor file and its metadata file, paths relative to the folder;
# - a **tensor file**: one line per point, its numbers separated by tabs, no header;
# - a **metadata file**: one line per point, in the same order. With two or more columns,
#   its first line is a header naming them (with a single column there is no header).
#   A tab or a line break inside a title would shift the columns or add a line, so they
#   become spaces.
#
# The kit adds thumbnails (a sprite sheet) and writes tensors as raw float32 bytes, which
# are exact and far faster to write than text (`labkit/export/projector.py` explains it);
# TensorBoard reads both forms.
#
# Write `write_projector_by_hand(folder, vectors, labels, titles, name)`, where `folder` is
# a path (a `str` or a `Path`) to create if it does not exist, `vectors` a NumPy array
# [n, dim], `labels` and `titles` lists of n strings, and `name` the tensor's name. It
# writes three files into `folder`:
#
# - `tensors.tsv`: n lines, the dim numbers of one row each, separated by tabs; write each
#   number with enough digits to read back the same float32, e.g. `f"{v:.9g}"`;
# - `metadata.tsv`: the header line `label<TAB>title`, then one line `label<TAB>title` per
#   point, with every tab, `\r` and `\n` inside a title replaced by a space;
# - `projector_config.pbtxt`: one block like this one, with `name` as the `tensor_name`:
#
# ```
# embeddings {
#   tensor_name: "by_hand/last_epoch"
#   tensor_path: "tensors.tsv"
#   metadata_path: "metadata.tsv"
# }
# ```
#
# The end of the cell calls it on the last epoch's embeddings `snaps.layer()[-1]` (an
# array [probe size, embedding width]), with `snaps.label_names` (one class name per
# probe point) and `snaps.titles`, into the folder `OUT / "projector_by_hand"`, under the
# name `"by_hand/last_epoch"`.

# %% id="projector" exercise
from pathlib import Path


def write_projector_by_hand(folder, vectors: np.ndarray, labels: list[str], titles: list[str],
                            name: str) -> None:
    """Write tensors.tsv, metadata.tsv and projector_config.pbtxt for one tensor into folder."""
    ### BEGIN SOLUTION
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    def clean(text) -> str:  # a tab or a line break would split a column or a row
        return " ".join(str(text).replace("\t", " ").replace("\r", " ").split("\n"))

    with open(folder / "tensors.tsv", "w", encoding="utf-8") as f:
        for row in np.asarray(vectors, dtype=np.float32):
            f.write("\t".join(f"{v:.9g}" for v in row) + "\n")
    with open(folder / "metadata.tsv", "w", encoding="utf-8") as f:
        f.write("label\ttitle\n")
        for label, title in zip(labels, titles, strict=True):
            f.write(f"{clean(label)}\t{clean(title)}\n")
    (folder / "projector_config.pbtxt").write_text(
        "embeddings {\n"
        f'  tensor_name: "{name}"\n'
        '  tensor_path: "tensors.tsv"\n'
        '  metadata_path: "metadata.tsv"\n'
        "}\n", encoding="utf-8")
    ### END SOLUTION


write_projector_by_hand(OUT / "projector_by_hand", snaps.layer()[-1], snaps.label_names,
                        snaps.titles, "by_hand/last_epoch")

# %% id="projector-check" test points=3
from google.protobuf import text_format
from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig

folder = OUT / "projector_by_hand"
vectors = snaps.layer()[-1]
for file in ("tensors.tsv", "metadata.tsv", "projector_config.pbtxt"):
    assert (folder / file).is_file(), f"no {folder / file}: write_projector_by_hand must write it"
back = np.loadtxt(folder / "tensors.tsv", delimiter="\t", ndmin=2)
assert back.shape == vectors.shape, \
    f"tensors.tsv reads back as {back.shape}, expected {vectors.shape}: one line per point"
assert np.allclose(back, vectors, rtol=1e-5, atol=1e-6), \
    "tensors.tsv holds other numbers than vectors: write more digits, e.g. f'{v:.9g}'"
rows = (folder / "metadata.tsv").read_text(encoding="utf-8").splitlines()
assert rows and rows[0] == "label\ttitle", \
    f"the first line of metadata.tsv should be 'label<TAB>title', not {rows[:1]}"
assert len(rows) == len(vectors) + 1, \
    f"metadata.tsv has {len(rows)} lines; expected the header and {len(vectors)} points"
assert [r.split("\t")[0] for r in rows[1:]] == snaps.label_names, \
    "the label column of metadata.tsv is not snaps.label_names, in order"
# TensorBoard's own parser must read the index.
config = text_format.Parse((folder / "projector_config.pbtxt").read_text(encoding="utf-8"),
                           ProjectorConfig())
assert len(config.embeddings) == 1, f"{len(config.embeddings)} embeddings blocks, expected 1"
entry = config.embeddings[0]
assert (entry.tensor_name, entry.tensor_path, entry.metadata_path) == \
    ("by_hand/last_epoch", "tensors.tsv", "metadata.tsv"), f"the block reads {entry}"
### BEGIN HIDDEN TESTS
import tempfile

rng = np.random.default_rng(1)
v = (rng.normal(size=(5, 3)) * 100).astype(np.float32)
labels = ["cat", "dog", "cat", "dog", "cat"]
titles = ["plain", "a\ttab", "a\nline break", "all\t\r\nthree", "last"]
with tempfile.TemporaryDirectory() as tmp:
    where = Path(tmp) / "not" / "yet"  # a folder that does not exist, passed as a str
    write_projector_by_hand(str(where), v, labels, titles, "check/tensor")
    back = np.loadtxt(where / "tensors.tsv", delimiter="\t", ndmin=2)
    assert back.shape == v.shape and np.allclose(back, v, rtol=1e-6, atol=1e-6), back
    rows = (where / "metadata.tsv").read_text(encoding="utf-8").split("\n")
    rows = [r.rstrip("\r") for r in rows if r.strip()]
    assert rows[0] == "label\ttitle" and len(rows) == 6, rows
    cells = [r.split("\t") for r in rows[1:]]
    assert all(len(c) == 2 for c in cells), cells
    assert [c[0] for c in cells] == labels
    for c, t in zip(cells, titles, strict=True):
        assert "\r" not in c[1] and c[1].split() == t.split(), (c, t)
    config = text_format.Parse((where / "projector_config.pbtxt").read_text(encoding="utf-8"),
                               ProjectorConfig())
    assert [(e.tensor_name, e.tensor_path, e.metadata_path) for e in config.embeddings] == \
        [("check/tensor", "tensors.tsv", "metadata.tsv")]
### END HIDDEN TESTS

# %% [markdown] id="projector-by-hand-open"
# Open your folder in a second TensorBoard (on the next port, so the kit's one above keeps
# running), pick `by_hand/last_epoch` and colour by `label`: the same points as the kit's
# last epoch, without thumbnails.

# %% id="projector-by-hand-tensorboard"
tb_by_hand = labkit.open_tensorboard(OUT / "projector_by_hand", port=6007)

# %% [markdown] id="the-explorer"
# ## 6. The explorer: the same embeddings inside the notebook
#
# The explorer needs no TensorBoard and no tunnel. Drag the epoch slider (or press
# play) and watch every point travel from epoch 0 to the end; colour the points by
# `label`, `prediction` or `correct` (right/wrong); hover over a point for its
# title and picture; click one (shift-drag to lasso several) to list its nearest
# neighbours in the full embedding, not just in this 2-D picture. The picture is one PCA
# for all epochs (section 7 explains PCA, section 8 how the epochs are put on the same
# axes), so a point moves between epochs only as much as its embedding changed.

# %% id="explore"
labkit.explore(snaps)

# %% [markdown] id="q-between" question
# Go to the last epoch, colour by `correct`, and hover over the points that sit between two
# clusters or inside another class's cluster. What are these {{items}}?

# %% [markdown] id="a-between" answer points=2 only="!cifar10"
# Mostly images that really do look like another class, and sometimes ones whose label
# itself is doubtful. On MNIST they are few (the test accuracy is about 99 %) and they are
# ambiguous or badly written digits: 4s that close like 9s, 3s and 5s, 7s and 1s. Their
# nearest neighbours (click a point) often belong to the other class. The network is not
# always wrong for a silly reason: these points show where the data itself is ambiguous,
# and Lab 6 finds such points systematically.

# %% [markdown] id="a-between-cifar10" answer points=2 only="cifar10"
# Many: with {{expected}} test accuracy a fifth or more of the probe set is
# misclassified, so the regions between clusters are crowded. They gather between
# related classes: cats and dogs above all (the pair the network confuses most), then
# automobiles and trucks, deer and horses, and birds with planes or deer. Planes and
# ships also mix when they share a blue sky or sea. The images there are often dark,
# seen from an unusual angle, or show the object as a small part of the frame: a dog's
# face close up looks like a cat's, a van seen head-on like a car. Their nearest
# neighbours (click a point) often belong to the other class. Some are truly ambiguous
# at 32×32 pixels, but most are images a person names at once (people classify CIFAR-10
# at about 94 %): these points show mostly where the network is still weak. Lab 6 finds
# such points systematically.

# %% [markdown] id="pca-t-sne-and-umap"
# ## 7. PCA, t-SNE and UMAP on the same embedding
#
# PCA is a rotation followed by dropping the dimensions of least variance: it keeps
# the global geometry, and distances in the picture are never larger than in the
# embedding. t-SNE and UMAP keep *neighbourhoods*, and bend distances freely to do
# it. *Trustworthiness* measures how well a view keeps neighbourhoods (1 = no false
# neighbours: the points near each other in the picture are near in the embedding too).
#
# ### Exercise: three views and their scores
#
# Project the last epoch's embeddings `last` (an array [probe size, embedding width]) with
# every method in `METHODS` (`labkit.reduce.project(last, method, seed=SEED)` returns an
# array [probe size, 2]) into a dict `views` from method to view. Then choose how to score
# a view, and write it as `neighbourhood_score(x, view)`, a float between 0 and 1, higher
# when the view keeps more of the neighbourhoods of `x`: the kit's
# `labkit.reduce.trustworthiness(x, view)` (it penalises false neighbours, points near in the
# picture but not in the data), or your own, such as the share of each point's 10 nearest
# neighbours in `x` that are also among its 10 nearest in the view, averaged over the points.
# Put each view's score in a dict `scores` from method to score. The cell after the test
# draws them side by side, with your scores in the titles.

# %% id="methods" exercise
last = snaps.layer()[-1]  # [probe size, embedding width] at the last epoch
### BEGIN SOLUTION
views = {m: labkit.reduce.project(last, m, seed=SEED) for m in METHODS}


def neighbourhood_score(x: np.ndarray, view: np.ndarray) -> float:
    """Trustworthiness: 1 when no point has false neighbours in the view."""
    return labkit.reduce.trustworthiness(x, view)


scores = {m: neighbourhood_score(last, xy) for m, xy in views.items()}
### END SOLUTION

# %% id="methods-check" test points=2
assert isinstance(views, dict) and sorted(views) == sorted(METHODS), \
    f"views should have one entry per method in METHODS {METHODS}, not {list(views)}"
for method, xy in views.items():
    assert np.shape(xy) == (len(last), 2), \
        f"views[{method!r}] has shape {np.shape(xy)}, expected ({len(last)}, 2)"
assert isinstance(scores, dict) and sorted(scores) == sorted(METHODS), \
    f"scores should have one entry per method in METHODS {METHODS}, not {list(scores)}"
for method, score in scores.items():
    assert isinstance(score, float) and 0 <= score <= 1, \
        f"scores[{method!r}] = {score!r}: a score is a float between 0 and 1 (float(...))"
    assert np.isclose(score, neighbourhood_score(last, views[method])), \
        f"scores[{method!r}] is not neighbourhood_score(last, views[{method!r}])"
# Whatever the score: a view that is the data itself keeps every neighbourhood, and a view
# whose points are shuffled keeps almost none.
_rng = np.random.default_rng(0)
_flat = _rng.normal(size=(200, 2))
_same = neighbourhood_score(_flat, _flat)
_shuffled = neighbourhood_score(_flat, _rng.permutation(_flat))
assert np.isclose(_same, 1.0), \
    f"a view identical to the data should score 1, got {_same:.3f}: higher means more kept"
assert _shuffled < 0.75 * _same, \
    (f"a view with its points shuffled scores {_shuffled:.3f}, nearly as much as the data "
     f"itself ({_same:.3f}): compare each point's neighbours in x with its neighbours in the view")
### BEGIN HIDDEN TESTS
if "pca" in views:
    assert np.allclose(views["pca"], labkit.reduce.project(last, "pca"), atol=1e-5)
_tall = _rng.normal(size=(150, 6))
assert neighbourhood_score(_tall, _tall[:, :2] * 3.0) > neighbourhood_score(
    _tall, _rng.normal(size=(150, 2)))  # two of the six axes keep more than noise does
### END HIDDEN TESTS

# %% id="methods-plot"
fig = plots.compare(views, snaps, scores=scores, score_name="score",
                    path=OUT / "figures" / "methods.png")

# %% [markdown] id="q-views" question
# Which of these views would you use to judge how far apart two classes are, and which to
# see which {{items}} are confused with which? What do distances mean in each?

# %% [markdown] id="a-views" answer points=2 only="!cifar10"
# PCA for how far apart classes are: it is a rotation followed by dropping axes, so
# distances in the picture can only shrink, a gap between two clusters in it is at least
# as large in the embedding, and the relative positions of the clusters mean something.
# But it keeps neighbourhoods worst: its trustworthiness (the model solution's score, in
# the panel titles) is the lowest of the three, while t-SNE and UMAP come close to 1, and
# classes that are apart in the full embedding can overlap in its 2-D shadow. t-SNE or UMAP
# to see which {{items}} sit next to which, and so which are confused: they keep
# neighbourhoods, but stretch and shrink distances freely, so the size of a cluster and the
# gaps between clusters say little.

# %% [markdown] id="a-views-cifar10" answer points=2 only="cifar10"
# PCA for how far apart classes are: it is a rotation followed by dropping axes, so
# distances in the picture can only shrink and a gap in it is at least as large in the
# embedding. On CIFAR-10 it shows little else: its trustworthiness is the lowest of the
# three by a wide margin, and most classes overlap in its 2-D shadow, with at best the
# vehicles on one side and the animals on the other. t-SNE or UMAP to see which images
# sit next to which, and so which classes are confused: they keep neighbourhoods (a
# trustworthiness far closer to 1) and show the groups the network forms and their
# overlaps, cats with dogs, cars with trucks, but they stretch and shrink distances
# freely, so the size of a cluster and the gaps between clusters say little.

# %% [markdown] id="from-epoch-0-to-the-end"
# ## 8. From epoch 0 to the end, in one frame
#
# Every epoch is drawn on the same two axes. First each epoch's embedding is turned onto
# the one before it by Orthogonal Procrustes (the rotation, possibly with a reflection,
# that best lines up two sets of matching points; Lab 5 has you write it), in all its
# dimensions: the network may rotate its embedding between epochs without changing
# anything that matters. Then one PCA of all epochs together gives the axes. So a point
# moves between panels only as much as the embedding itself changed. (A PCA per epoch
# would switch axes whenever two directions' variances cross, and the picture would
# reconfigure although the embedding barely moved.) Each panel is scaled to the last
# one's size: the embedding's spread grows during training (the cell prints the mean
# length of an embedding at each epoch), and at true scale the early epochs would be
# squeezed towards the centre.

# %% id="epoch-grid"
traj = align.trajectory(snaps, method="pca")
print("mean length of an embedding per epoch:",
      [round(float(np.linalg.norm(e, axis=1).mean()), 1) for e in snaps.layer()])
fig = plots.epoch_grid(traj, snaps, method="pca", path=OUT / "figures" / "epoch_grid.png")

# %% [markdown] id="look-for-grid"
# **Look for:** the epoch at which the clusters appear, and what the later epochs still
# change once the accuracy in section 4 has stopped rising.

# %% [markdown] id="mantis" optional
# ## 9. A CSV for Mantis
#
# Mantis, an online workbench that draws embeddings as maps, reads one CSV row per point: the title,
# the label (`categoric`), the prediction, and the embedding at every epoch, each as a
# list of numbers (`embedding_epoch_0` to `embedding_epoch_N`). Upload it there to explore
# the same run on a shared map.

# %% id="mantis-csv"
labkit.write_mantis_csv(snaps, OUT / "mantis.csv")
print("Mantis CSV:", OUT / "mantis.csv")

# %% [markdown] id="clean-up"
# ## Clean up
#
# TensorBoard (both of them, and the tunnel, if you opened one) runs in the background
# until this notebook's kernel ends (you shut it down or restart it, or close Colab's
# runtime). To stop it sooner, when you are done with the projector, remove the `#` and
# run the cell.

# %% id="stop-servers"
# labkit.view.stop_all(); labkit.stop_tunnels()
