# ---
# jupyter:
#   labkit:
#     outputs: [mantis.csv, tensorboard/projector_config.pbtxt, projector_by_hand/projector_config.pbtxt, figures/reducers.png, figures/epoch_grid.png]
# ---

# %% [markdown] id="title"
# # Lab {{lab}}: watching a CNN learn {{name}} in the Embedding Projector{{variant}}
#
# {{badge}}
#
# A classifier turns each image into a vector, its *embedding*, one layer before the output. We train a small CNN on {{name}}, record the embeddings of a fixed set of test images before training and after every epoch, and look at them: in TensorBoard's Embedding Projector, in an explorer inside the notebook, and with PCA, t-SNE and UMAP side by side. You write the two pieces of plumbing yourself first, a forward hook that reads a layer's output and the files the projector reads, and then let the kit do the same for every epoch.
#
# {{how_to_run}}

# %% id="parameters" tags=["parameters"]
# This lab's parameters: change them here, then run the notebook again.
DATASET: str = "mnist"
DATA_DIR: str = "data"
CLASSES: list[int] | None = None  # e.g. [0, 1, 2]: only these classes (None: all of them)
EPOCHS: int = 10
LR: float = 1e-3  # the peak learning rate (AdamW, cosine schedule)
PROBE_SIZE: int | None = 2000
SEED: int = 0
REDUCERS: list[str] = ["pca", "tsne", "umap"]
OUT: str = "runs/mnist"

# %% [markdown] id="the-data"
# ## 1. The data
#
# {{name}} holds {{what}}. The kit loads it whole into memory as tensors (the training
# loop then batches by indexing, no per-image work) and picks the **probe set**: a fixed,
# stratified sample of the test split. The probe set is what we embed at every epoch, so
# the same {{items}} can be followed through training.

# %% id="load-data"
data = labkit.load_dataset(DATASET, data_dir=DATA_DIR, probe_size=PROBE_SIZE, seed=SEED,
                           classes=CLASSES)
display(data)

# %% [markdown] id="the-model-and-its-layers"
# ## 2. The model and its layers
#
# Every layer has a name: `labkit.layer_names(model)` lists them, containers (`block1`)
# and their parts (`block1.conv`) alike. The embedding we watch is the output of the
# **penultimate** layer, `embed`: the last representation before the classifier head,
# one vector per image (its width is printed below).

# %% id="build-model"
model = labkit.build_model("cnn", data.input_shape, data.n_classes, seed=SEED)
print(labkit.layer_names(model))
print("penultimate layer:", labkit.penultimate_layer(model),
      f"({model.head.in_features} numbers per image)")

# %% [markdown] id="hook-intro"
# ### Exercise: a forward hook by hand
#
# `model(x)` returns only the head's scores. To read what a layer in the middle computes,
# PyTorch lets you attach a *forward hook* to any module: a function
# `hook(module, inputs, output)` that it calls every time that module has computed its
# output. `module.register_forward_hook(hook)` attaches it and returns a *handle*;
# `handle.remove()` takes it off again. Two details matter:
#
# - **Keep `output.detach()`, not `output`.** While the model trains, a layer's output
#   carries the autograd graph of everything computed before it. Keeping the tensor keeps
#   that graph, and the intermediate tensors it refers to, alive in memory: recording a
#   probe set at every epoch would pile them up. `.detach()` gives the same numbers with
#   no graph behind them.
# - **Remove the hook, even when the forward pass fails.** A forgotten hook stays on the
#   module and runs on *every later* forward pass, training included: it keeps recording,
#   costs time and holds memory, and the next one you register records alongside it. Hence
#   `try: ... finally: handle.remove()`.
#
# Write `capture_by_hand(model, layer_name, x)`, which returns the output of the layer
# named `layer_name` (a name from `labkit.layer_names(model)`) when `model` runs on the
# batch `x`:
#
# 1. look the module up with `dict(model.named_modules())[layer_name]`;
# 2. register a forward hook on it that stores `output.detach()` (in a dict or list that
#    your function creates);
# 3. put the model in evaluation mode (`model.eval()`: batch normalisation uses its running
#    statistics and dropout is off, so the output does not depend on the rest of the batch)
#    and run `model(x)` inside `with torch.no_grad():`;
# 4. remove the handle in a `finally` block, and return the stored tensor.
#
# The end of the cell calls it with `model`, the penultimate layer's name `layer`
# (`labkit.penultimate_layer(model)`) and the first 256 probe images `data.x_probe[:256]`
# (a tensor [256, channels, height, width]), and keeps the result in `by_hand`: a tensor
# [256, embedding width].

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


layer = labkit.penultimate_layer(model)
by_hand = capture_by_hand(model, layer, data.x_probe[:256])
print(f"{layer!r}: {tuple(by_hand.shape)}")


# %% id="hook-check" test points=3
import torch

layer = labkit.penultimate_layer(model)
module = dict(model.named_modules())[layer]
x = data.x_probe[:256]
mine = capture_by_hand(model, layer, x)
assert isinstance(mine, torch.Tensor), \
    f"capture_by_hand returned {type(mine).__name__}: return the tensor your hook stored"
assert len(module._forward_hooks) == 0, \
    f"a hook is still on {layer!r}: call handle.remove() in a finally block"
model.eval()
with torch.no_grad(), labkit.capture(model, [layer]) as acts:
    model(x)
assert mine.shape == acts[layer].shape, \
    (f"shape {tuple(mine.shape)}, expected {tuple(acts[layer].shape)}: store the hook's "
     f"`output` (its third argument), of the module named {layer!r}")
assert not mine.requires_grad, "the stored tensor still requires grad: store output.detach()"
assert torch.allclose(mine, acts[layer], atol=1e-6), \
    "not the numbers labkit.capture records: call model.eval() before the forward pass"
### BEGIN HIDDEN TESTS
# Another layer and another batch.
other = dict(model.named_modules())["block1"]
x2 = data.x_probe[-7:]
mine2 = capture_by_hand(model, "block1", x2)
model.eval()
with torch.no_grad(), labkit.capture(model, ["block1"]) as acts2:
    model(x2)
assert mine2.shape == acts2["block1"].shape and torch.allclose(mine2, acts2["block1"], atol=1e-6)
assert not mine2.requires_grad and mine2.grad_fn is None
assert len(other._forward_hooks) == 0
# A forward pass that fails (one channel too many) must leave no hook behind.
import contextlib

wrong = torch.zeros(2, data.input_shape[0] + 1, *data.input_shape[1:])
with contextlib.suppress(Exception):
    capture_by_hand(model, layer, wrong)
assert len(module._forward_hooks) == 0, "a failed forward pass left the hook on the layer"
### END HIDDEN TESTS

# %% [markdown] id="hook-compare-intro"
# The kit's `labkit.capture` is the same idea as a context manager: hooks on when the
# `with` block starts, off when it ends, also on error. It gives the same numbers as
# `by_hand`:

# %% id="hook-compare"
model.eval()
with torch.no_grad(), labkit.capture(model, [layer]) as acts:
    model(data.x_probe[:256])
print(f"{layer!r}: {tuple(by_hand.shape)} by hand, {tuple(acts[layer].shape)} with "
      f"labkit.capture, equal: {torch.allclose(by_hand, acts[layer], atol=1e-6)}")
print("hooks left on the layer:", len(dict(model.named_modules())[layer]._forward_hooks))

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
    weights = {p.data_ptr() for p in model.parameters()}
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


handle = dict(model.named_modules())[layer].register_forward_hook(keep_both)
try:
    model.eval()  # eval mode changes no running statistics; autograd still records
    with torch.enable_grad():
        model(data.x_probe[:256])
finally:
    handle.remove()
for name, t in kept.items():
    n_nodes, n_bytes = graph_behind(t)
    print(f"{name:>16}: requires_grad={t.requires_grad!s:5}  "
          f"grad_fn={t.grad_fn.name() if t.grad_fn is not None else None}  "
          f"graph: {n_nodes} nodes, {n_bytes / 2**20:.2f} MiB saved")
print(f"the embedding itself: {kept['output'].nbytes / 2**20:.2f} MiB")

# %% [markdown] id="q-detach" question
# The cell after the hook exercise keeps the penultimate layer's output of one forward pass
# twice, as `output` and as `output.detach()`, and prints what each holds. What does
# `.detach()` save, and what would happen if the kit's hook stored `output` instead of
# `output.detach()` while recording the probe set at every epoch?

# %% [markdown] id="a-detach" answer points=2
# `output` has `requires_grad=True` and a `grad_fn` (`ReluBackward0`, the ReLU of `embed`):
# it is the end of an autograd graph (20 nodes on MNIST, 45 on CIFAR-10) that reaches back
# through every layer to the input, and that graph keeps alive what its backward step would
# need, the activations of every layer and the input batch. For 256 {{items}} that is about
# 58 MiB on MNIST (about 145 MiB on CIFAR-10), several hundred times the 0.12 MiB (0.25 MiB)
# of the embedding itself; `output.detach()` holds the same numbers with no graph
# (`requires_grad=False`, `grad_fn=None`, 0 bytes). Without `.detach()`, every stored
# recording keeps its own graph: 2000 probe images at 11 epochs would hold about 5 GB on
# MNIST (13 GB on CIFAR-10), and memory would grow with each epoch until it runs out, on a GPU first. The stored
# tensors would also stay connected to the weights: a loss computed from them later would
# send gradients back into the model through an old graph (or fail because that graph was
# already freed). `.detach()` keeps the values only.

# %% [markdown] id="q-penultimate" question
# We record the penultimate layer, the input of the classifier head, rather than the
# head's output (one score per class). What would a picture of the head's outputs lose?

# %% [markdown] id="a-penultimate" answer points=2
# The head is a linear map from the embedding (128 numbers per image on MNIST, 256 on
# CIFAR-10) to 10 scores, one per class: its output is a projection of the embedding onto
# 10 directions chosen only to rank the classes, so most of the embedding's dimensions are
# dropped. After training, the scores of all images of a class point the same way (a
# nearly one-hot softmax), so a picture of them mostly shows the predicted class and the
# confidence. The
# penultimate layer is what the head reads: training must make the classes linearly
# separable there, but it still holds the differences the head ignores, so its picture
# shows which images the network finds alike, groups inside a class, and the images that
# sit between two classes.

# %% [markdown] id="train-recording-the-embeddings"
# ## 3. Train, recording the embeddings
#
# `labkit.train` does what your `capture_by_hand` does, on the penultimate layer: it
# records the probe set at **epoch 0, before any update**, and after every epoch, each
# time with the model in evaluation mode and the hook removed as soon as the probe set has
# passed through. This is the lab's long cell: {{train_time}}. On Colab, a GPU runtime
# (*Runtime → Change runtime type*) makes it much faster; the kit uses the GPU by itself.
# Where the hardware supports it, the kit computes training in 16-bit numbers (bf16, or
# fp16 on older GPUs such as Colab's T4) while it keeps the weights in 32-bit (fp32):
# faster, and the accuracy stays within about a point. `snaps.meta["precision"]` shows
# which one it used (`"fp32"`, `"bf16"` or `"fp16"`); the probe set is always recorded in fp32.

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

# %% [markdown] id="q-high-lr" question optional
# `LR` is the peak learning rate, `1e-3` by default. Predict what happens with `LR = 10`,
# then try it (set it in the parameters cell and run the notebook up to section 3, or train
# a fresh `labkit.build_model("cnn", ...)` with `lr=10`). What do the history table and the
# k-NN accuracy show, what would the projector show, and when does the kit stop with an
# error instead?

# %% [markdown] id="a-high-lr" answer points=2
# Each step moves the weights too far: the steps overshoot every minimum, the loss jumps up
# instead of down, and the weights and activations blow up. On the small digits set
# (`labkit.load_dataset("digits")`, the kit's CNN, `lr=10`) the test accuracy drops to
# chance ({{chance}}) after epoch 1 and stays there; the training loss reads 35 after epoch
# 1 and the test loss 43775 after epoch 2, when the mean length of an embedding has grown
# from about 1 to over 2600. Then every ReLU of `embed` dies: from epoch 3 on, every
# embedding is the zero vector, and the k-NN accuracy falls from 0.76 at epoch 0 to 0.10.
# The projector would show all points on one spot. The kit does not stop here, because the
# loss stays finite (AdamW's steps have a bounded size and batch normalisation rescales the
# activations); when the loss becomes NaN or infinite, `labkit.train` raises
# `DivergedError`, with the message
# *training diverged at epoch N (loss nan); try a lower learning rate than 10*. Expect the
# same on {{name}}: either way nothing is learnt, while `1e-3` brings digits to about 99 %
# test accuracy.

# %% [markdown] id="the-embedding-projector"
# ## 4. The Embedding Projector
#
# We write the projector logs (one tensor per epoch, with the titles and labels as
# metadata) and open TensorBoard, shown below the cell: locally from
# http://127.0.0.1:6006 (or the next free port), on Colab through Colab's own proxy.
# The projector does not load in Safari: use Chrome or Firefox, or the explorer in
# section 5.
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
# The k-NN accuracy printed in section 3 shows it: at epoch 0 it is already far above
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
# of section 3 at epoch 0 is far lower than on MNIST: neighbours share a background more
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
# are exact and far faster to write than text (`labkit/projector.py` explains it);
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
# array [probe size, embedding width]), with `snaps.label_names` and `snaps.titles`, into
# the folder `OUT / "projector_by_hand"`, under the name `"by_hand/last_epoch"`.

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
# ## 5. The explorer: the same embeddings inside the notebook
#
# The explorer needs no TensorBoard and no tunnel. Drag the epoch slider (or press
# play) and watch every point travel from epoch 0 to the end; colour the points by
# `label`, `prediction` or `correct` (right/wrong); hover over a point for its
# title and picture; click one (shift-drag to lasso several) to list its nearest
# neighbours in the full embedding, not just in this 2-D picture (a PCA of each epoch,
# rotated to line up with the next; section 6 explains PCA).

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
# ## 6. PCA, t-SNE and UMAP on the same embedding
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
# every method in `REDUCERS` (`labkit.reduce.project(last, method, seed=SEED)` returns an
# array [probe size, 2]) into a dict `views` from method to view, and score each view with
# `labkit.reduce.trustworthiness(last, view)` (a float) into a dict `scores` from method
# to score. The cell after the test draws them side by side.

# %% id="reducers" exercise
last = snaps.layer()[-1]  # [probe size, embedding width] at the last epoch
### BEGIN SOLUTION
views = {m: labkit.reduce.project(last, m, seed=SEED) for m in REDUCERS}
scores = {m: labkit.reduce.trustworthiness(last, xy) for m, xy in views.items()}
### END SOLUTION

# %% id="reducers-check" test points=2
assert isinstance(views, dict) and sorted(views) == sorted(REDUCERS), \
    f"views should have one entry per method in REDUCERS {REDUCERS}, not {list(views)}"
for method, xy in views.items():
    assert np.shape(xy) == (len(last), 2), \
        f"views[{method!r}] has shape {np.shape(xy)}, expected ({len(last)}, 2)"
assert isinstance(scores, dict) and sorted(scores) == sorted(REDUCERS), \
    f"scores should have one entry per method in REDUCERS {REDUCERS}, not {list(scores)}"
for method, score in scores.items():
    assert isinstance(score, float) and 0 <= score <= 1, \
        f"scores[{method!r}] = {score!r}: expected the float labkit.reduce.trustworthiness returns"
### BEGIN HIDDEN TESTS
if "pca" in views:
    assert np.allclose(views["pca"], labkit.reduce.project(last, "pca"), atol=1e-5)
for method, xy in views.items():
    assert abs(scores[method] - labkit.reduce.trustworthiness(last, np.asarray(xy))) < 1e-9
### END HIDDEN TESTS

# %% id="reducers-plot"
fig = plots.compare(views, snaps, scores, path=OUT / "figures" / "reducers.png")

# %% [markdown] id="q-views" question
# Which of these views would you use to judge how far apart two classes are, and which to
# see which {{items}} are confused with which? What do distances mean in each?

# %% [markdown] id="a-views" answer points=2 only="!cifar10"
# PCA for how far apart classes are: it is a rotation followed by dropping axes, so
# distances in the picture can only shrink, a gap between two clusters in it is at least
# as large in the embedding, and the relative positions of the clusters mean something.
# But it keeps neighbourhoods worst: its trustworthiness is clearly the lowest of the three
# (typically below 0.9, against about 0.99 for t-SNE and UMAP), and classes that are apart
# in the full embedding can overlap in its 2-D shadow. t-SNE or UMAP to see which {{items}}
# sit next to which, and so which are confused: they keep neighbourhoods, but stretch and
# shrink distances freely, so the size of a cluster and the gaps between clusters say
# little.

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
# ## 7. From epoch 0 to the end, in one frame
#
# Every epoch is drawn on the same two axes. First each epoch's embedding is turned onto
# the one before it by Orthogonal Procrustes (the rotation, possibly with a reflection,
# that best lines up two sets of matching points; Lab 5 has you write it), in all its
# dimensions: the network may rotate its embedding between epochs without changing
# anything that matters. Then one PCA of all epochs together gives the axes. So a point
# moves between panels only as much as the embedding itself changed. (A PCA per epoch
# would switch axes whenever two directions' variances cross, and the picture would
# reconfigure although the embedding barely moved.) Each panel is scaled to the last
# one's size: the embedding's spread grows tens of times during training, and at true
# scale epoch 0 would be a dot.

# %% id="epoch-grid"
traj = align.trajectory(snaps, method="pca")
fig = plots.epoch_grid(traj, snaps, method="pca", path=OUT / "figures" / "epoch_grid.png")

# %% [markdown] id="look-for-grid"
# **Look for:** the epoch at which the clusters appear, and what the later epochs still
# change once the accuracy in section 3 has stopped rising.

# %% [markdown] id="mantis" optional
# ## 8. A CSV for Mantis
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
# TensorBoard (both of them, and the tunnel, if you opened one) keeps running in the
# background until you stop it: when you are done with the projector, remove the `#` and
# run the cell.

# %% id="stop-servers"
# labkit.serve.stop_all(); labkit.stop_tunnels()
