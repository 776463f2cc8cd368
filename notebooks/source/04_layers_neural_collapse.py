# ---
# jupyter:
#   labkit:
#     outputs: [figures/layer_grid.png, figures/metric_curves.png, figures/cka_layers.png,
#       figures/neighbours_by_layer.png]
# ---

# %% [markdown] id="title"
# # Lab 4: layer by layer, and neural collapse
#
# {{badge}}
#
# A classifier is a chain of functions, one per layer, and every layer re-embeds the data
# in a space of its own. Do deeper layers arrange the classes into better clusters? We
# start, as the layer-by-layer homework this lab follows does, with three classes, train
# a deep MLP until it classifies every training image correctly, record every layer on
# the training images, and look: you write the SVD projection and the NC1 measure of
# neural collapse yourself, then compare them with the kit's. At the end you vary the
# depth and go to all ten classes.
#
# {{how_to_run}}

# %% id="parameters" tags=["parameters"]
# This lab's parameters: change them here, then run the notebook again.
DATASET: str = "digits"
DATA_DIR: str = "data"
CLASSES: list[int] | None = [0, 1, 2]  # start with three classes, as the layer-by-layer
                                       # homework does (None: all ten)
PROBE_SPLIT: str = "train"  # the probe's images: "train" (what the network is fitted on) or "test"
EPOCHS: int = 30
DEPTH: int = 5  # hidden layers of the MLP
LR: float = 1e-3  # the peak learning rate
PROBE_SIZE: int | None = None  # the whole probe split, at most 2000 points
SEED: int = 0
PROBE_TARGET: float = 1.0  # the probe accuracy the shallowest-layer exercise looks for
PRECISION: str = "fp32"  # fp32 on every machine, so the model answers' numbers are what you
                         # get; "auto": mixed precision where the hardware has it
OUT: str = "runs/layers"

# %% [markdown] id="deep-mlp-intro"
# ## 1. A deep MLP, every layer recorded
#
# We train an MLP with `DEPTH` hidden layers of 128 units on the classes `CLASSES`
# of {{name}} ({{what}}) for `EPOCHS` epochs, long enough for the training accuracy
# to reach 100 %: we want to see how the network arranges the data it is fitted on,
# so overfitting does not worry us here. Before training and after every epoch the
# kit records, for a fixed probe set, the whole way from input to output: the input
# itself (`input`, the pixels as one vector), **every** hidden layer (`hidden1` to
# `hidden5`) and the head's output (`head`: the logits, one number per class, which
# the softmax turns into probabilities). With
# `PROBE_SPLIT = "train"` the probe is drawn from the **training** {{items}} (all of
# them here; a smaller `PROBE_SIZE` draws a sample stratified by class): everything
# below, pictures and measures alike, is about the image of the training data.
# `snaps.layer(name)` is an array `[epochs + 1, n_probe, width]` (the input's is the
# same at every epoch: training changes the network, not the data); `snaps.layer()`
# with no name is the penultimate layer (the last hidden one, `snaps.penultimate`),
# the one neural collapse is about. `snaps.layer_names` are the layer names in order,
# `snaps.probabilities` the softmax outputs `[epochs + 1, n_probe, classes]`, `snaps.labels`
# the probe labels (relabelled 0, 1, 2, ... in the order of `CLASSES`).

# %% id="train"
data = labkit.load_dataset(DATASET, data_dir=DATA_DIR, probe_size=PROBE_SIZE, seed=SEED,
                           classes=CLASSES, probe_split=PROBE_SPLIT)
model = labkit.build_model("deep-mlp", data.input_shape, data.n_classes, seed=SEED, depth=DEPTH)
# "input" is the model's input; then every hidden layer; then the head, whose output is the logits
layers = ["input", *labkit.embedding_layers(model), labkit.head_layer(model)]
snaps = labkit.train(model, data, epochs=EPOCHS, layers=layers, lr=LR, seed=SEED,
                     precision=PRECISION)
print(f"classes {snaps.class_names}; {snaps.n_probe} probe points from the {PROBE_SPLIT} split; "
      f"trained in {snaps.meta['precision']} on the {snaps.meta['device']}")
snaps

# %% [markdown] id="fit-intro"
# Why insist on 100 %? Neural collapse (Papyan, Han & Donoho, 2020) is a claim about
# the *terminal phase of training*: the epochs after the network has fitted every
# training example, when the loss can still fall only by pulling the training points
# of each class closer together and pushing the classes further apart. It is a statement
# about the data the network is fitted on; {{items}} it has never seen need not obey it.
# So before measuring anything we check both conditions: the probe is training data, and
# the network classifies all of it correctly. The table follows the accuracy on the probe
# (the model as it stands after each epoch) next to the accuracy on the held-out test
# split.

# %% id="fit"
fit = pd.DataFrame({
    "epoch": range(snaps.epochs + 1),
    f"probe ({PROBE_SPLIT}) accuracy": [snaps.correct(e).mean() for e in range(snaps.epochs + 1)],
    "test accuracy": [row["test_acc"] for row in snaps.history]}).set_index("epoch")
perfect = fit.index[fit.iloc[:, 0] == 1.0]
print(f"probe accuracy first 100 % at epoch {perfect[0]}; last epoch {fit.iloc[-1, 0]:.1%}"
      if len(perfect) else "the probe accuracy never reaches 100 %" +
      (": train longer (EPOCHS)" if PROBE_SPLIT == "train" else ", as expected on test data"))
fit.loc[sorted({*range(0, snaps.epochs + 1, 5), snaps.epochs})].round(3)  # every 5th epoch

# %% [markdown] id="svd-intro"
# ## 2. SVD projections, layer by layer
#
# To see a 128-dimensional layer we must drop to two dimensions. The projection
# that keeps the geometry most faithfully is PCA, computed with the singular value
# decomposition: centre the points (subtract the mean of each column), write the
# centred matrix as $X_c = U S V^\top$, and keep the coordinates along the first
# $k$ right singular vectors (the rows of $V^\top$), the directions of largest
# variance. It is a rotation followed by dropping axes, so distances can only
# shrink and a gap seen in the picture is really there.
#
# Singular vectors have no preferred sign: $v$ and $-v$ are equally good, and a
# refit may flip an axis for no reason. The kit (like scikit-learn) fixes each sign
# so that the entry of largest absolute value in each row of $V^\top$ is positive.

# %% [markdown] id="svd-instructions"
# **Exercise.** Write `svd_projection(x, k=2)`: for an array `x` `[n, d]`, return
# the `[n, k]` float64 coordinates of the centred rows on the top `k` right singular
# vectors, with the sign convention above. Work in float64
# (`np.asarray(x, dtype=np.float64)`), use
# `np.linalg.svd(xc, full_matrices=False)`, flip the sign of each of the first `k`
# rows of `vt` whose largest-magnitude entry is negative, and return `xc @ vt[:k].T`.
# (The kit's `labkit.reduce.project(x, "pca")` casts its input to float32 first; the
# layers here are float32 already, so on them the two must agree exactly.)

# %% id="svd" exercise
def svd_projection(x: np.ndarray, k: int = 2) -> np.ndarray:
    """Coordinates [n, k] of the centred rows of x on its top-k right singular vectors."""
    ### BEGIN SOLUTION
    x = np.asarray(x, dtype=np.float64)
    xc = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    vt = vt[:k]
    # The largest-magnitude entry of each axis positive: the same picture on every refit.
    signs = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])
    signs[signs == 0] = 1
    return xc @ (vt * signs[:, None]).T
    ### END SOLUTION


xy = svd_projection(snaps.layer()[-1])  # the last hidden layer after the last epoch
print(f"{xy.shape}; the first three points:\n{xy[:3].round(3)}")

# %% id="svd-check" test points=3
_xy = svd_projection(snaps.layer()[-1])
assert isinstance(_xy, np.ndarray) and _xy.shape == (snaps.n_probe, 2), \
    f"expected an array [{snaps.n_probe}, 2], got {getattr(_xy, 'shape', type(_xy))}"
assert _xy.dtype == np.float64, \
    f"work in float64 (np.asarray(x, dtype=np.float64)), got {_xy.dtype}"
assert np.allclose(_xy.mean(axis=0), 0, atol=1e-8), \
    "the coordinates should have mean 0: centre the rows (subtract x.mean(axis=0)) before the SVD"
_t = np.arange(-2.0, 3.0)  # points on a line along (3, 4), and along (-3, -4)
assert np.allclose(svd_projection(np.outer(_t, [3.0, 4.0]), k=1)[:, 0], 5 * _t), \
    "on points t * (3, 4) the first coordinate should be 5 * t: check the centring and the scale"
from labkit import reduce as _reduce

assert np.allclose(_xy, _reduce.project(snaps.layer()[-1], "pca"), rtol=0, atol=1e-9), \
    "on the last hidden layer your projection should be the kit's labkit.reduce.project(x, " \
    "'pca'): same centring, same axes, and each axis' sign fixed as above"
assert np.allclose(svd_projection(np.outer(_t, [-3.0, -4.0]), k=1)[:, 0], -5 * _t), \
    ("on points t * (-3, -4) the first coordinate should be -5 * t: the axis must be (0.6, 0.8), "
     "whose largest entry is positive; flip the rows of vt whose largest-magnitude entry is "
     "negative")
### BEGIN HIDDEN TESTS
for _name in snaps.layer_names:  # the kit's projection, exactly, on every layer and two epochs
    for _e in (0, -1):
        _h = snaps.layer(_name)[_e]
        assert np.allclose(svd_projection(_h), labkit.reduce.project(_h, "pca"), rtol=0,
                           atol=1e-9), f"differs from the kit on {_name}, epoch {_e}"
_rng = np.random.default_rng(1)
_x = _rng.normal(size=(300, 12)) * _rng.uniform(0.1, 3.0, 12) + 5.0
for _k in (1, 3, 5):
    assert np.allclose(svd_projection(_x, _k),
                       labkit.reduce.SVDProjection(_k).fit_transform(_x), rtol=0, atol=1e-9)
    assert np.allclose(svd_projection(_x.astype(np.float32), _k),
                       labkit.reduce.project(_x, "pca", n_components=_k), rtol=0, atol=1e-9)
### END HIDDEN TESTS

# %% [markdown] id="svd-layers-instructions"
# **Exercise.** Draw the last epoch through every layer: one row of scatter plots,
# one panel per layer in the order of `snaps.layer_names` (from `input` to `head`), each showing
# `svd_projection(snaps.layer(name)[-1])` with the points coloured by
# `snaps.labels` with the colour map `"tab10"` and `vmin=0, vmax=9` (the kit's
# colours: class 0 blue, 1 orange, 2 green, ... as in the kit's legends below; the
# fixed range gives class `i` the `i`-th colour however many classes there are) and
# titled with the layer's name, one `ax.scatter` call per panel and no colour bar (the test
# reads each panel's one scatter). Call the figure `fig` (the test cell looks at its
# panels). Then compare it with the kit's grid below.

# %% id="svd-layers" exercise
import matplotlib.pyplot as plt

### BEGIN SOLUTION
fig, axes = plt.subplots(1, len(snaps.layer_names), figsize=(2.8 * len(snaps.layer_names), 3),
                         squeeze=False, layout="constrained")
for ax, name in zip(axes[0], snaps.layer_names, strict=True):
    xy = svd_projection(snaps.layer(name)[-1])
    ax.scatter(xy[:, 0], xy[:, 1], c=snaps.labels, cmap="tab10", vmin=0, vmax=9, s=4,
               linewidths=0)
    ax.set_title(name, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("last epoch, SVD projection per layer (each in its own axes)")
plt.show()
### END SOLUTION

# %% id="svd-layers-check" test points=2
assert "fig" in globals(), (
    "call your figure `fig`: fig, axes = plt.subplots(1, len(snaps.layer_names))")
panels = [ax for ax in fig.axes if ax.collections]
assert len(panels) == len(snaps.layer_names), (
    f"draw one scatter panel per layer ({len(snaps.layer_names)}), found {len(panels)}")
assert [ax.get_title() for ax in panels] == list(snaps.layer_names), (
    f"the panels are titled {[ax.get_title() for ax in panels]}: one per layer, in the order of "
    f"snaps.layer_names, each titled with its layer's name")
for ax, name in zip(panels, snaps.layer_names, strict=True):
    assert len(ax.collections) == 1, \
        (f"panel {name!r} holds {len(ax.collections)} scatters: draw all its points in one "
         f"ax.scatter call, coloured with c=snaps.labels")
    drawn = np.asarray(ax.collections[0].get_offsets())
    assert drawn.shape == (len(snaps.labels), 2), \
        f"panel {name!r} shows {len(drawn)} points, expected {len(snaps.labels)}: every probe point"
    last, first = svd_projection(snaps.layer(name)[-1]), svd_projection(snaps.layer(name)[0])
    assert not (np.allclose(drawn, first, atol=1e-4) and not np.allclose(first, last, atol=1e-4)), \
        f"panel {name!r} shows epoch 0: draw the last epoch, snaps.layer(name)[-1]"
    assert np.allclose(drawn, last, atol=1e-4), \
        (f"panel {name!r} does not show svd_projection(snaps.layer({name!r})[-1]): each panel "
         f"projects its own layer's last epoch")
    colours = ax.collections[0].get_array()
    assert colours is not None and np.array_equal(np.asarray(colours), snaps.labels), \
        f"panel {name!r} is not coloured by the labels: scatter(..., c=snaps.labels, cmap='tab10')"
    assert ax.collections[0].get_cmap().name == "tab10" and \
        ax.collections[0].norm.vmin == 0 and ax.collections[0].norm.vmax == 9, \
        f"panel {name!r}: use cmap='tab10', vmin=0, vmax=9, so class i gets the kit's i-th colour"
### BEGIN HIDDEN TESTS
for ax, name in zip(panels, snaps.layer_names, strict=True):
    assert ax.get_title() == name, f"title each panel with its layer's name ({name})"
    assert len(ax.collections[0].get_offsets()) == len(snaps.labels)
### END HIDDEN TESTS

# %% [markdown] id="layer-grid-intro"
# The kit draws the same projections, with one change: each layer's picture is
# rotated (and possibly reflected, rescaled and shifted) onto the picture of the
# layer before it, by Orthogonal Procrustes (the rotation, possibly with a reflection,
# that best lines up two sets of matching points; Lab 5 has you write it), so the whole
# grid shares the first layer's frame, the input's. One panel is added at the end: the
# softmax of the logits (`snaps.probabilities`), the probabilities the network outputs.
# The grid then follows the probe from the pixels to the output, as the Grand Tour
# article does with its views of every layer.

# %% id="layer-grid"
# every captured layer at the last epoch, then the softmax; `align.layer_trajectory(snaps)`
# does the same for the captured layers alone: a PCA of each, aligned one after another
names = [*snaps.layer_names, "softmax"]
reps = [snaps.layer(name)[-1] for name in snaps.layer_names] + [snaps.probabilities[-1]]
lt = align.align_sequence([labkit.reduce.project(h, "pca") for h in reps])
plots.layer_grid(lt, snaps, layers=names, ncols=4, method="pca (SVD)",
                 path=f"{OUT}/figures/layer_grid.png");

# %% [markdown] id="q-own-projections" question
# Compare your row of projections with the kit's grid. What is the same, what
# differs? Why does the kit rotate each layer onto the one before, when every
# layer's projection already has its signs fixed?

# %% [markdown] id="a-own-projections" answer points=2
# The point clouds are the same up to a rotation or reflection and a change of
# scale: every cluster has the same shape and the same neighbours in both rows,
# because Procrustes moves a layout rigidly and never bends it. What differs is the
# orientation. In my row the zeros (blue) sit on the left in `input`, bottom left in
# `hidden1`, on the right in `hidden2`, bottom left in `hidden3` and `hidden4` and at the
# top in `hidden5` and `head`, and the ones and twos swap places just as freely. In the
# kit's grid the zeros stay on the left, the twos top right and the ones below them, from
# the pixels to the softmax, so one can follow each class through the network: the same
# picture as the input in `hidden1` and `hidden2` (the ones with a long tail, touching
# the twos), three separate clusters from `hidden3` on, thin ones in `hidden5` and
# `head`, and three dots, the corners of the triangle, in the softmax. The sign
# convention only chooses between $v$ and $-v$ within one layer; two layers are
# different spaces, with axes of their own (and possibly different widths), so
# nothing ties the axes of one to the axes of the next, and when two singular
# values are close even the order of the axes can change. Only a fit to the
# previous picture gives them a common frame.

# %% [markdown] id="neighbours-by-layer-intro"
# **Where do pixel neighbours become class neighbours?** A projection shows clusters; the
# neighbours of one image show what a layer finds *alike*. The cell below takes the probe image
# whose 8 nearest pixel neighbours (by cosine) carry its label least often, and draws, one row
# per recorded layer at the last epoch, its 8 nearest neighbours in that layer (a red title:
# another label than the query's). Look for the first layer from which all 8 share its label,
# and for a layer that does worse than the pixels (section 3's silhouette has the same dip).

# %% id="neighbours-by-layer"
def nearest(h: np.ndarray, i: int, k: int = 8) -> np.ndarray:
    """The k cosine nearest neighbours of row i (itself excluded), nearest first."""
    unit = h / np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-12)
    cos = unit @ unit[i]
    cos[i] = -np.inf
    return np.argsort(-cos, kind="stable")[:k]


pixels = snaps.layer("input")[-1]
same_in_pixels = [np.mean(snaps.labels[nearest(pixels, i)] == snaps.labels[i])
                  for i in range(snaps.n_probe)]
probe_query = int(np.argmin(same_in_pixels))  # a tie: the first such image
fig_strip, axes = plt.subplots(len(snaps.layer_names), 9, squeeze=False, layout="constrained",
                               figsize=(9 * 0.9, len(snaps.layer_names) * 1.05))
agree = {}
for row, name in zip(axes, snaps.layer_names, strict=True):
    found = nearest(snaps.layer(name)[-1], probe_query)
    agree[name] = int(np.sum(snaps.labels[found] == snaps.labels[probe_query]))
    for ax, i in zip(row, [probe_query, *found], strict=True):
        if snaps.thumbnails is not None:
            ax.imshow(snaps.thumbnails[i], cmap="gray")
        ax.set_xticks([])
        ax.set_yticks([])
        title = f"query: {snaps.label_names[i]}" if i == probe_query else snaps.label_names[i]
        ax.set_title(title, fontsize=7,
                     color="red" if snaps.labels[i] != snaps.labels[probe_query] else "black")
    row[0].set_ylabel(name, fontsize=8)
fig_strip.suptitle(f"probe #{probe_query} ({snaps.label_names[probe_query]}) and its nearest "
                   f"neighbours, layer by layer", fontsize=9)
fig_strip.savefig(f"{OUT}/figures/neighbours_by_layer.png", dpi=120)
plt.show()
print("neighbours with the query's label, of 8:", agree)

# %% [markdown] id="measuring-the-clusters"
# ## 3. Measuring the clusters
#
# The pictures show two dimensions; measures look at all of them. **Neural
# collapse** (Papyan, Han & Donoho, 2020) is the claim that when a classifier
# reaches (nearly) perfect training accuracy, its penultimate layer collapses each
# class onto a single point, the class mean; the last layer then only has to tell
# which point is which class. Its first measure, **NC1**, compares the spread
# *within* classes with the spread *between* class means. With $C$ classes, class
# means $\mu_c$, their average $\mu_G$ (the mean of the class means, so class
# sizes do not tilt it) and $n$ points $h_i$ with labels $y_i$:
#
# $$\Sigma_W = \frac1n \sum_i (h_i - \mu_{y_i})(h_i - \mu_{y_i})^\top, \qquad
# \Sigma_B = \frac1C \sum_c (\mu_c - \mu_G)(\mu_c - \mu_G)^\top, \qquad
# \mathrm{NC1} = \frac1C \operatorname{Tr}\left(\Sigma_W \Sigma_B^{+}\right).$$
#
# $\Sigma_B^{+}$ is the pseudo-inverse: $\Sigma_B$ has rank at most $C - 1$, fewer
# than the layer's width, so it has no inverse; the pseudo-inverse inverts it on
# the directions the class means span and ignores the others. NC1 thus measures
# the within-class spread in units of the between-class spread, direction by
# direction, and is 0 when every point sits on its class mean. Here $h_i$ are the
# probe's **training** {{items}}, the data the collapse is claimed for.

# %% [markdown] id="nc1-instructions"
# **Exercise.** Write `nc1_by_hand(h, y)`: `h` is an array `[n, d]`, `y` the `n`
# labels; return NC1 as a Python `float`, exactly as above. Take the classes in the
# order of `np.unique(y)`, work in float64, and compute the pseudo-inverse with
# `np.linalg.pinv(sigma_b, rcond=1e-10)`, which treats eigenvalues below
# $10^{-10}$ times the largest as zero, as the kit does (without it, rounding
# errors in the directions $\Sigma_B$ does not span would be inverted into huge
# numbers). The cell then tabulates NC1 for every layer before training and after
# the last epoch: `nc1_table`, indexed by layer.

# %% id="nc1" exercise
def nc1_by_hand(h: np.ndarray, y: np.ndarray) -> float:
    """NC1 = Tr(Sigma_W Sigma_B^+) / C of the features h [n, d] with labels y [n]."""
    ### BEGIN SOLUTION
    h = np.asarray(h, dtype=np.float64)
    y = np.asarray(y)
    classes = np.unique(y)
    means = np.stack([h[y == c].mean(axis=0) for c in classes])
    between = means - means.mean(axis=0)  # mu_c - mu_G
    within = h - means[np.searchsorted(classes, y)]  # h_i - mu_{y_i}
    sigma_w = within.T @ within / len(h)
    sigma_b = between.T @ between / len(classes)
    return float(np.trace(sigma_w @ np.linalg.pinv(sigma_b, rcond=1e-10)) / len(classes))
    ### END SOLUTION


nc1_table = pd.DataFrame(
    {"epoch 0": [nc1_by_hand(snaps.layer(name)[0], snaps.labels) for name in snaps.layer_names],
     "last epoch": [nc1_by_hand(snaps.layer(name)[-1], snaps.labels)
                    for name in snaps.layer_names]},
    index=pd.Index(snaps.layer_names, name="layer"))
nc1_table.round(3)

# %% id="nc1-check" test points=3
_v = nc1_by_hand(snaps.layer()[-1], snaps.labels)
assert isinstance(_v, float), f"return a Python float (float(...)), got {type(_v).__name__}"
assert _v >= 0, \
    (f"NC1 is a trace of a product of two covariances, never negative; got {_v}: work in "
     f"float64 (np.asarray(h, dtype=np.float64)), the pseudo-inverse amplifies rounding")
_y = np.array([0, 0, 1, 1])
assert abs(nc1_by_hand(np.array([[-1.0, 2.0], [-1.0, 2.0], [1.0, 0.0], [1.0, 0.0]]), _y)) < 1e-12, \
    "points sitting exactly on their class means must give NC1 = 0"
assert np.isclose(nc1_by_hand(np.array([[-2.0], [0.0], [0.0], [2.0]]), _y), 0.5), \
    ("two classes {-2, 0} and {0, 2} in one dimension: Sigma_W = 1 (averaged over all n points), "
     "Sigma_B = 1 (averaged over the C class means), so NC1 = 1 / C = 0.5; "
     f"got {nc1_by_hand(np.array([[-2.0], [0.0], [0.0], [2.0]]), _y)}")
# Classes of different sizes (3, 1 and 1 points, class means 0, 4 and 8): mu_G is the mean of
# the C class means (4), each class counts once in Sigma_B, and NC1 = 0.4 / (32 / 3) / 3.
_h, _y = np.array([[-1.0], [1.0], [0.0], [4.0], [8.0]]), np.array([0, 0, 0, 1, 2])
_got = nc1_by_hand(_h, _y)
assert not np.isclose(_got, 0.4 / 13.2267 / 3, rtol=1e-3), \
    (f"got {_got:.5f}: mu_G is the mean of the C class means, not of all n points (with classes "
     f"of different sizes the two differ)")
assert not np.isclose(_got, 0.4 / 12.8 / 3, rtol=1e-3), \
    (f"got {_got:.5f}: Sigma_B averages over the C class means, each counted once, not weighted "
     f"by how many points a class has")
assert np.isclose(_got, 0.4 / (32 / 3) / 3), \
    (f"three classes of 3, 1 and 1 points: Sigma_W = 0.4 (over all 5 points), Sigma_B = 32 / 3 "
     f"(over the 3 class means), NC1 = 0.0125; got {_got:.5f}")
_kit_v = metrics.neural_collapse(snaps.layer()[-1], snaps.labels)["nc1"]
assert np.isclose(_v, _kit_v, rtol=1e-6), \
    (f"NC1 of the penultimate layer at the last epoch is {_v:.6g}, the kit's {_kit_v:.6g}: "
     f"check the formula, and work in float64")
### BEGIN HIDDEN TESTS
_rng = np.random.default_rng(2)
for _n, _d, _labels in ((200, 6, [0, 1, 2]), (301, 40, [2, 5, 7, 9]), (90, 3, [0, 1, 2, 3, 4])):
    _h = _rng.normal(size=(_n, _d)) * _rng.uniform(0.2, 2.0, _d)
    _yy = _rng.choice(_labels, size=_n)
    _h += 3 * _rng.normal(size=(max(_labels) + 1, _d))[_yy]  # class offsets
    assert np.isclose(nc1_by_hand(_h, _yy), metrics.neural_collapse(_h, _yy)["nc1"],
                      rtol=1e-9, atol=0)
for _name in snaps.layer_names:
    for _e in (0, -1):
        _h = snaps.layer(_name)[_e]
        assert np.isclose(nc1_by_hand(_h, snaps.labels),
                          metrics.neural_collapse(_h, snaps.labels)["nc1"], rtol=1e-9, atol=0), \
            f"differs from the kit on {_name}, epoch {_e}"
### END HIDDEN TESTS

# %% [markdown] id="q-nc1-epochs" question
# Read your `nc1_table`. How does NC1 change from the first layer to the last
# before training (epoch 0), and after the last epoch? What does the difference
# tell you about what training did to the deeper layers?

# %% [markdown] id="a-nc1-epochs" answer points=2
# The input's NC1 is 0.179 at both epochs: training changes the network, not the
# pixels. Before training NC1 *grows* with depth after the first layer (0.163, 0.186,
# 0.226, 0.301, 0.308 from `hidden1` to `hidden5`, and 4.5 for the random head's three
# logits): each random layer mixes the classes a little more, so the deeper the layer,
# the more the class means blur into the spread within classes. After 30 epochs the
# order is reversed and NC1 *falls* with depth, from 0.179 in the pixels to 0.120,
# 0.061, 0.034, 0.015 and 0.008 (`hidden1` to `hidden5`; 0.009 in the head). Training
# lowered NC1 in every layer, but by far the most in the deepest ones (almost fortyfold
# in `hidden5`, by only a quarter in `hidden1`): the later layers are where the network
# pulls the training images of each class towards their mean.

# %% [markdown] id="kit-measures"
# The kit computes NC1 (the same number as yours) and more for every layer and
# epoch: the **silhouette** of the classes (how much closer a point is to its own
# class than to the nearest other, from -1 to 1), and the accuracy of a
# k-nearest-neighbour and a linear probe fitted on one half of the probe set and
# scored on the other.

# %% id="geometry"
table = metrics.geometry(snaps)
plots.metric_curves(table, snaps, path=f"{OUT}/figures/metric_curves.png")
kit_nc1 = table[table.epoch == snaps.epochs].set_index("layer")["nc1"]
print("the kit's NC1 at the last epoch equals your nc1_table's on every layer:",
      bool(np.allclose(kit_nc1[nc1_table.index], nc1_table["last epoch"], rtol=1e-9)))
table[table.epoch == snaps.epochs][["layer", "epoch", "nc1", "silhouette", "knn_acc",
                                    "linear_probe_acc"]].round(3)

# %% [markdown] id="depth-instructions"
# **Exercise.** `table` is a DataFrame with one row per layer and epoch: the columns
# `layer` (a name from `snaps.layer_names`) and `epoch` (0 to `EPOCHS`) say which, the
# others hold the measures (`nc1`, `silhouette`, `knn_acc`, `linear_probe_acc`, ...;
# the last epoch's rows are shown above). Make `last`: the rows of the last epoch, indexed by
# layer (in the order of `snaps.layer_names`, from `input` to `head`), with exactly the
# columns `nc1`, `silhouette` and `knn_acc`. Set `better_with_depth` to a `bool`: `True`
# only if the silhouette at the last epoch rises at every step from one layer to the next.
# The steps are `np.diff(last["silhouette"].to_numpy())`, one fewer than the layers. (Beware
# `last["silhouette"].diff()`: its first value is `NaN`, since the first layer has no layer
# before it, and `NaN > 0` is `False`; drop it with `.dropna()` first.)

# %% id="depth" exercise
### BEGIN SOLUTION
last = table[table.epoch == table.epoch.max()].set_index("layer")[["nc1", "silhouette", "knn_acc"]]
better_with_depth = bool((last["silhouette"].diff().dropna() > 0).all())
### END SOLUTION
print(last.round(3))
print("better clusters with depth:", better_with_depth)

# %% id="depth-check" test points=2
assert isinstance(last, pd.DataFrame), f"last should be a DataFrame, got {type(last).__name__}"
assert list(last.index) == list(snaps.layer_names), \
    f"index last by layer, in the order {snaps.layer_names}; got {list(last.index)}"
assert list(last.columns) == ["nc1", "silhouette", "knn_acc"], \
    f"keep exactly the columns nc1, silhouette, knn_acc; got {list(last.columns)}"
_end = table[table.epoch == snaps.epochs].set_index("layer").loc[list(snaps.layer_names)]
assert np.allclose(last.to_numpy(float), _end[["nc1", "silhouette", "knn_acc"]].to_numpy(float),
                   equal_nan=True), \
    f"these are not the last epoch's values: keep the rows where table.epoch == {snaps.epochs}"
assert isinstance(better_with_depth, bool), \
    f"better_with_depth should be a bool (bool(...)), got {type(better_with_depth).__name__}"
_steps = np.diff(last["silhouette"].to_numpy(float))
assert better_with_depth == bool((_steps > 0).all()), (
    f"the silhouette changes from layer to layer by {np.round(_steps, 3).tolist()}, so "
    f"better_with_depth should say whether all of these are positive. If you used "
    f".diff(), its first value is NaN (NaN > 0 is False): drop it with .dropna()")
### BEGIN HIDDEN TESTS
assert np.array_equal(last.to_numpy(float), _end[["nc1", "silhouette", "knn_acc"]].to_numpy(float),
                      equal_nan=True), "the last epoch's values exactly, not rounded"
assert better_with_depth == bool(np.all(np.diff(_end["silhouette"].to_numpy()) > 0))
### END HIDDEN TESTS

# %% [markdown] id="q-depth" question
# Is "better clusters with depth" true here? Quote the silhouette and NC1 of each
# layer at the last epoch. Does the kNN accuracy improve with depth as much, and
# what does the linear probe on the first hidden layer, `hidden1`, say?

# %% [markdown] id="a-depth" answer points=2
# Not from the input, and so `better_with_depth` is `False`; from the first hidden layer
# on, yes. In this run (fp32, as `PRECISION` sets it, on a CPU; a GPU changes the second
# digit, not the picture) the pixels have a silhouette of 0.274 and `hidden1` only 0.224:
# the first layer's clusters are less compact than the pixels'. From there it rises at
# every layer, 0.252, 0.310, 0.409 and 0.659 to `hidden5`, slowly at first and steeply
# in the last two layers, and 0.910 in the head's logits; NC1 falls at every step
# (0.179 in the pixels, 0.120, 0.061, 0.034, 0.015, 0.008 in `hidden1` to `hidden5`),
# except for the head's 0.009. The kNN accuracy hardly changes: 0.970 on the pixels,
# 0.975 on `hidden1`, 0.995 on `hidden2`, 1.0 from `hidden3` on; and a linear probe on
# the pixels already reaches 0.98, as on `hidden1` (0.995 on `hidden2`, 1.0 from
# `hidden3` on). So with three classes the input already holds almost all the
# information needed to classify; the layers mostly *arrange* it, pulling each class into
# a tight cluster far from the others.

# %% [markdown] id="probe-instructions"
# ### Exercise: the shallowest layer that is enough
#
# A linear probe asks what a layer makes *easy*: can a linear classifier read the class off
# it? The kit's `linear_probe_acc` above is one such probe (a logistic regression fitted on
# one half of the probe set, scored on the other), but not the only one. Choose your own,
# any **linear** classifier fitted on some points and scored on **others** (a logistic
# regression scored by cross-validation (`cross_val_score`), a linear SVM, a nearest-class-mean
# rule fitted on a shuffled half of the points, a least-squares fit to one-hot labels, ...),
# and use it to find the shallowest layer whose last epoch reaches `PROBE_TARGET`. (Here a
# *probe* is that classifier; the probe *set* is still the points it reads.)
#
# 1. Write `probe_accuracy(features, labels)`: the share of held-out points your probe gets
#    right, a `float`. Scoring on the points it was fitted on measures memory, not ease: the
#    test gives it random labels, on which an honest probe is near chance. Fix the seed of
#    any random split (`random_state=0`), so that the same call gives the same number, and
#    shuffle or stratify it, so that every class is in both parts.
# 2. Set `probe_scores` to a pandas Series indexed by layer, in the order of
#    `snaps.layer_names`: your probe on each layer's last epoch, with `snaps.labels`.
# 3. Set `shallowest` to the name of the first layer whose score is at least `PROBE_TARGET`
#    (or `None` if none is).
#
# The test checks that your numbers are your probe's and that `shallowest` follows from
# them, whatever probe you chose; the question after it asks why the layers after
# `shallowest` still change.

# %% id="probe" exercise
### BEGIN SOLUTION
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def probe_accuracy(features: np.ndarray, labels: np.ndarray) -> float:
    """Five-fold cross-validated accuracy of a logistic regression on standardised features:
    every point is scored once, by a probe that was not fitted on it."""
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return float(cross_val_score(probe, features, labels, cv=folds).mean())


probe_scores = pd.Series({name: probe_accuracy(snaps.layer(name)[-1], snaps.labels)
                          for name in snaps.layer_names}, name="probe accuracy")
reached = probe_scores.index[probe_scores >= PROBE_TARGET]
shallowest = reached[0] if len(reached) else None
### END SOLUTION
print(probe_scores.round(4))
print(f"the shallowest layer whose probe reaches {PROBE_TARGET}: {shallowest}")

# %% id="probe-check" test points=2
_rng = np.random.default_rng(0)
_blobs = np.repeat(np.eye(3) * 10, 40, axis=0) + _rng.normal(size=(120, 3))
_blob_labels = np.repeat(np.arange(3), 40)
_easy = probe_accuracy(_blobs, _blob_labels)
assert isinstance(_easy, float) and 0 <= _easy <= 1, \
    f"probe_accuracy should return a share between 0 and 1 as a float, got {_easy!r}"
assert _easy >= 0.95, \
    (f"three far-apart clusters (40 points each, sorted by class) should be read almost "
     f"perfectly by a linear probe, got {_easy:.3f}: if your split is in order, the held-out "
     f"points hold classes the fit never saw; shuffle it (with a seed) or stratify it")
_noise, _random_labels = _rng.normal(size=(150, 200)), _rng.integers(0, 3, size=150)
_chance = probe_accuracy(_noise, _random_labels)
assert probe_accuracy(_noise, _random_labels) == _chance, \
    "your probe gives another number on each call: fix the random_state of its split"
assert _chance <= 0.5, \
    (f"on random labels your probe scores {_chance:.2f}, far above chance (1/3): it is scored on "
     f"the points it was fitted on. Fit on some points and score on the others (a held-out "
     f"half, or cross-validation)")
_in_order = list(getattr(probe_scores, "index", [])) == list(snaps.layer_names)
assert isinstance(probe_scores, pd.Series) and _in_order, \
    (f"probe_scores should be a Series indexed by layer in the order {snaps.layer_names}, "
     f"got {getattr(probe_scores, 'index', type(probe_scores).__name__)}")
for _n in snaps.layer_names:
    assert np.isclose(probe_scores[_n], probe_accuracy(snaps.layer(_n)[-1], snaps.labels)), \
        (f"probe_scores[{_n!r}] is not your probe_accuracy on that layer's last epoch: score "
         f"each layer's last epoch, snaps.layer(name)[-1], with snaps.labels")
_reached = [n for n in snaps.layer_names if probe_scores[n] >= PROBE_TARGET]
assert shallowest == (_reached[0] if _reached else None), \
    (f"by your own scores the first layer at {PROBE_TARGET} or above is "
     f"{_reached[0] if _reached else None!r}, not {shallowest!r}")
### BEGIN HIDDEN TESTS
assert probe_accuracy(np.repeat(np.eye(4) * 8, 25, axis=0), np.repeat(np.arange(4), 25)) >= 0.95
### END HIDDEN TESTS

# %% [markdown] id="q-probe" question
# Which probe did you choose, and which layer is the shallowest one that reaches
# `PROBE_TARGET`? If a linear read-out of that layer is already enough, why are the layers
# after it still different from it? Read NC1 and the silhouette in `last`.

# %% [markdown] id="a-probe" answer points=2
# One valid probe: a logistic regression on standardised features, scored by five-fold
# cross-validation, so that every point is scored once by a probe that was not fitted on it.
# It reads 0.9951 of the pixels right, 0.9975 of `hidden1` and `hidden2`, and 1.0 from
# `hidden3` on: `hidden3` is the shallowest layer that is enough. (Another probe may pick
# anything from `input` to `hidden4`: at the top, a probe's accuracy turns on one or two
# points.) Yet the layers after it are not copies of it: NC1 falls from 0.034 in `hidden3` to
# 0.015 and 0.008 in `hidden4` and `hidden5`, and the silhouette rises from 0.310 to 0.409
# and 0.659. Once the classes are separable, the cross-entropy loss can still fall, by making
# the margins larger: each class is pulled tighter and the classes further apart, the
# terminal phase of training that neural collapse describes. An accuracy stops at 1.0 and
# cannot see this; NC1 and the silhouette measure the geometry, and the geometry keeps
# improving.


# %% [markdown] id="collapse-intro"
# ## 4. Does the penultimate layer collapse to C points?
#
# Neural collapse says more than NC1 going to 0. The centred class means
# $\mu_c - \mu_G$ of the penultimate layer should form a **simplex**: equal lengths
# (*equinorm*, measured by the spread of the lengths relative to their mean) and
# every pair at the same angle, with cosine $-1/(C-1)$ (*equiangular*, measured by
# the standard deviation of the pairwise cosines). The classifier's weight vectors
# should point along those means (NC3, 0 when they do), and the nearest class mean
# should predict what the network predicts (NC4). With three classes the simplex is
# an equilateral triangle centred at $\mu_G$, cosine $-1/2$; with ten, a regular
# 9-dimensional simplex, cosine $-1/9$. Below, on the training probe, before
# training and after the last epoch.

# %% id="collapse"
c = len(snaps.class_names)
print(f"{'':44s}{'epoch 0':>9s}{'last':>9s}")
nc = {}
for e in (0, -1):
    nc[e] = metrics.neural_collapse(snaps.layer()[e], snaps.labels, snaps.head_weights[e],
                                    snaps.predictions[e])
for key, what in [("nc1", "NC1 (0 = collapsed)"),
                  ("nc2_equinorm", "spread of the mean lengths (0 = equal)"),
                  ("nc2_mean_cosine", f"mean cosine between means (simplex {-1 / (c - 1):.3f})"),
                  ("nc2_equiangularity", "std of the cosines (0 = equiangular)"),
                  ("nc3", "classifier vs class means (NC3, 0 = aligned)"),
                  ("nc4_agreement", "nearest class mean agrees with the model")]:
    print(f"{what:44s}{nc[0][key]:9.3f}{nc[-1][key]:9.3f}")

# %% [markdown] id="q-collapse" question
# Does the penultimate layer collapse onto $C$ points? The mean cosine between
# the centred class means is close to $-1/(C-1)$ already at epoch 0: why is that
# no evidence of a simplex (hint: what do the centred means sum to?), and which
# numbers do show the simplex forming?

# %% [markdown] id="a-collapse" answer points=3
# Nearly, as far as these measures go (the next question asks how near): on the
# training probe, which the network classifies 100 % correctly
# from epoch 3 on, NC1 of `hidden5` falls from 0.308 to 0.008. The centred means
# $m_c$ sum to zero, so $\lVert\sum_c m_c\rVert^2 = 0$ and, when the lengths are
# nearly equal, the average pairwise cosine is forced to about $-1/(C-1)$ (with
# three equally long means it is exactly $-1/2$): it was already -0.485 in the
# untrained network, and is -0.499 at the end. What shows the simplex forming is
# the spread: the standard deviation of the cosines falls from 0.196 to 0.051 and
# the spread of the lengths from 0.153 to 0.035, so the means become equally long
# and equally far apart. NC3 falls from 1.43 to 0.65 (the classifier's rows turn
# towards the means, but not all the way in 30 epochs) and the nearest class mean
# agrees with the network on all the probe images (0.341 before training).

# %% [markdown] id="collapse-points-intro"
# Collapse onto *which* points? The table gives, for each class of the penultimate
# layer, the root-mean-square distance of its training {{items}} to their class mean
# (the spread), the same spread counting only the directions the centred class means
# span (the only ones NC1 and the simplex look at), and the distance of the class
# mean from the centre $\mu_G$; below it, the distances between the class means. The
# picture projects the last epoch onto its top two singular directions and marks the
# class means (crosses) and $\mu_G$ (a black dot).

# %% id="collapse-points"
import matplotlib.pyplot as plt


def class_geometry(h: np.ndarray, y: np.ndarray):
    """Class means [C, d], their centre mu_G, and per class: the RMS distance of its points
    to their mean, in all directions and in the span of the centred means only."""
    means = np.stack([h[y == k].mean(axis=0) for k in range(c)])
    centre = means.mean(axis=0)
    basis = np.linalg.svd((means - centre).T, full_matrices=False)[0][:, :c - 1]
    off = h - means[y]  # each point minus its class mean
    rms = [np.sqrt((off[y == k] ** 2).sum(axis=1).mean()) for k in range(c)]
    rms_plane = [np.sqrt(((off[y == k] @ basis) ** 2).sum(axis=1).mean()) for k in range(c)]
    return means, centre, np.array(rms), np.array(rms_plane)


h_pen = {e: snaps.layer()[e].astype(np.float64) for e in (0, -1)}  # the penultimate layer
geo = {e: class_geometry(h_pen[e], snaps.labels) for e in (0, -1)}
print(pd.DataFrame({(when, what): col for e, when in ((0, "epoch 0"), (-1, "last"))
                    for what, col in (("spread", geo[e][2]), ("in span", geo[e][3]),
                                      ("to centre", np.linalg.norm(geo[e][0] - geo[e][1],
                                                                   axis=1)))},
                   index=pd.Index(snaps.class_names, name="class")).round(2))
for e, when in ((0, "epoch 0"), (-1, "last")):
    d = [np.linalg.norm(geo[e][0][i] - geo[e][0][j]) for i in range(c) for j in range(i + 1, c)]
    print(f"{when}: distances between class means {min(d):.2f} to {max(d):.2f}; "
          f"largest spread {geo[e][2].max():.2f}, in the span of the means {geo[e][3].max():.2f}")

# The top two singular directions of the last epoch; the means projected with them.
centre = h_pen[-1].mean(axis=0)
_, _, vt = np.linalg.svd(h_pen[-1] - centre, full_matrices=False)
xy, means_xy, mu_g_xy = ((a - centre) @ vt[:2].T for a in (h_pen[-1], geo[-1][0], geo[-1][1]))
fig2, ax = plt.subplots(figsize=(4, 4), layout="constrained")
ax.scatter(xy[:, 0], xy[:, 1], c=snaps.labels, cmap="tab10", vmin=0, vmax=9, s=4, alpha=0.5)
ax.scatter(means_xy[:, 0], means_xy[:, 1], c=np.arange(c), cmap="tab10", vmin=0, vmax=9,
           marker="X", s=120, edgecolors="black")
ax.scatter(*mu_g_xy, c="black", s=30)
ax.set_aspect("equal")
ax.set_title(f"{snaps.penultimate}, last epoch: class means and their centre", fontsize=9)
plt.show()

# %% [markdown] id="q-collapse-points" question
# How many points does each class collapse to in the penultimate layer? Which
# points? Answer with the numbers above: the spread within each class against the
# distances between the class means, and the cosines against $-1/(C-1)$.

# %% [markdown] id="a-collapse-points" answer points=2
# Towards three points, without reaching them. The three class means are the vertices
# of a nearly equilateral triangle (a 2-simplex) centred at the global mean $\mu_G$, the
# black dot in the picture: at the last epoch they lie 6.45, 7.02 and 6.85 from $\mu_G$
# and 11.31 to 12.27 from each other (an equilateral triangle of radius 6.8 has sides of
# 11.7), with mean cosine -0.499 against $-1/(C-1) = -0.5$ and a std of the cosines of
# 0.051. But the classes are clouds round those vertices, not points: each one's RMS
# spread (2.48 to 3.42) is 38 % to 49 % of its mean's distance from the centre. Most of
# that spread lies in directions the means do not span: within the plane of the
# triangle, the only directions NC1 and the simplex measures look at, each class spreads
# 0.59 to 0.84, 9 % to 12 % of the radius. So in the plane that tells the
# classes apart the collapse is far along (NC1 0.008); in the other directions of the
# 128 it has not happened. Before training there was no triangle: all three means sat
# within 0.03 of $\mu_G$, inside the spread of each class (0.04 to 0.06).

# %% [markdown] id="cka-intro" optional
# ### How alike are the layers?
#
# How alike are the layers themselves, from the pixels to the softmax? **Linear CKA**
# (centred kernel alignment) compares two representations of the same points and is 1
# when one is a rotation and a rescaling of the other, whatever their widths. Lab 5 has
# you write it. The table gives the heat map's numbers.

# %% id="cka-layers"
# `names` and `reps` from the grid of section 2: input, every layer, head, softmax (last epoch)
cka = pd.DataFrame(metrics.cka_matrix(reps), index=names, columns=names)
plots.cka_heatmap(cka.to_numpy(), names, path=f"{OUT}/figures/cka_layers.png",
                  title="linear CKA between layers, last epoch")
plt.show()
cka.round(2)

# %% [markdown] id="q-cka-layers" question
# Which layers are most alike according to linear CKA, and which least? Does that
# match the pictures per layer in section 2?

# %% [markdown] id="a-cka-layers" answer points=2
# Neighbouring layers are the most alike: 0.96 from the input to `hidden1`, then 0.95,
# 0.94, 0.95 and 0.96 from one hidden layer to the next, and 1.00 from `hidden5` to the
# head. Similarity falls steadily with the distance between layers, down to 0.69 from
# the input to `hidden5` and 0.67 to the head (0.70 between `hidden1` and `hidden5`).
# No single step changes the representation much; the differences add up. The head is a
# linear map of `hidden5`; after the collapse most of `hidden5`'s variance lies in the
# plane of the class means (the triangle), and the head's three logits keep that plane,
# hence 1.00. The softmax, a non-linear squashing of the logits, is 0.98 from both. The
# aligned grid shows the same gradual change: the clusters keep their places and tighten
# from one layer to the next without jumping, the same picture as the pixels in `hidden1`
# and `hidden2`, three separate clusters from `hidden3` on, three thin ones at the
# corners of a triangle in `hidden5` and the head, and three dots in the softmax.

# %% [markdown] id="your-turn" optional
# ## 5. Your turn: depth, then all ten classes
#
# The layer-by-layer homework this lab follows asks you to experiment. Change a
# parameter in the parameters cell at the top, run the whole notebook again, and compare
# the line printed below (copy it somewhere first: a new run replaces it).
#
# 1. **Depth.** Set `DEPTH = 2`, then `DEPTH = 8` (keep `CLASSES = [0, 1, 2]`).
#    Does the training accuracy still reach 100 %? Does NC1 still fall layer by
#    layer, and how low does it get in the penultimate layer? Is the silhouette
#    still better with every layer?
# 2. **Ten classes.** Set `DEPTH = 5` again and `CLASSES = None`. The simplex now
#    has ten vertices in nine dimensions, so its cosine is $-1/9 \approx -0.111$,
#    and a two-dimensional picture can no longer show it whole: look at the numbers
#    (NC1, the spread of the lengths, the std of the cosines) rather than at the
#    scatter plot. Is the collapse as complete as with three classes after the same
#    30 epochs? If not, what happens with more epochs (`EPOCHS = 60`)?
# 3. **Unseen data.** Set `CLASSES = [0, 1, 2]` and `EPOCHS = 30` again, and
#    `PROBE_SPLIT = "test"`: the same measures on test {{items}} the network never
#    fitted. How much of the collapse survives? (On test images the probe accuracy
#    need not reach 100 %.)
#
# Each run writes its figures to `OUT/figures`, replacing the last run's: set `OUT` per
# run (e.g. `runs/layers-depth2`) to keep them all.

# %% id="run-summary"
print(f"DEPTH={DEPTH}, {c} classes, EPOCHS={EPOCHS}, probe from {PROBE_SPLIT}: "
      f"probe accuracy {snaps.correct(-1).mean():.3f}, test accuracy "
      f"{snaps.history[-1]['test_acc']:.3f}; penultimate NC1 {nc[-1]['nc1']:.3f}, "
      f"length spread {nc[-1]['nc2_equinorm']:.3f}, mean cosine "
      f"{nc[-1]['nc2_mean_cosine']:.3f} (simplex {-1 / (c - 1):.3f}), std of cosines "
      f"{nc[-1]['nc2_equiangularity']:.3f}")

# %% [markdown] id="q-findings" question
# Write up your findings as the homework asks: for each run of this section (depth 2
# and 8, ten classes, then the test split), the parameters and the printed line, and
# what they say. Does the heuristic "better clusters with every layer" hold up? How
# complete is neural collapse, and on which data? Add the figures that support your
# answer, and enough detail (data, classes, depth, width, epochs, learning rate, seed)
# that someone could rerun your experiment.

# %% [markdown] id="a-findings" answer points=3
# Setup: scikit-learn's digits, the kit's `deep-mlp` (hidden layers of 128 units, each
# linear, batch norm and ReLU), AdamW with a one-cycle schedule peaking at a learning
# rate of 1e-3, 30 epochs, seed 0, the probe = the whole training split of the chosen
# classes (402 images for 0, 1, 2), trained in fp32 on a CPU (`PRECISION`;
# `snaps.meta["precision"]` says what a run used). In bf16 or on a GPU the numbers differ
# in the second digit and the findings stay. Findings, with the
# numbers of the last epoch:
#
# - **Depth 5, three classes** (the lab's run): 100 % training accuracy from epoch 3;
#   penultimate NC1 0.308 → 0.008; silhouette 0.274 in the pixels, then 0.224, 0.252,
#   0.310, 0.409, 0.659 from `hidden1` to `hidden5` and 0.910 in the head; NC1 0.179 in
#   the pixels, then 0.120, 0.061, 0.034, 0.015, 0.008.
# - **Depth 2:** 100 % from epoch 4; silhouette 0.299 then 0.573, NC1 0.057 then 0.013:
#   the same picture with fewer steps, the last hidden layer the tightest, and here even
#   `hidden1` is more clustered than the pixels.
# - **Depth 8:** 100 % from epoch 3; NC1 falls with every layer (0.124, 0.108, 0.081,
#   0.070, 0.039, 0.025, 0.018, 0.012) and so does the silhouette rise, but slowly through
#   the first five layers (0.227, 0.248, 0.262, 0.271, 0.309) and steeply in the last three
#   (0.392, 0.513, 0.714): most of the clustering happens in the last few layers, whatever
#   the depth, and the first layers stay below the pixels' 0.274.
# - **Ten classes, depth 5:** 100 % first at epoch 11, for good from epoch 19; NC1
#   1.778 → 0.033, std of the cosines 0.066, length spread 0.050: less complete than with
#   three classes (NC1 four times higher), though still small. The silhouette rises at
#   every step here, from 0.163 in the pixels to 0.699 in `hidden5`. (The mean cosine,
#   -0.111, is forced by the means summing to zero and is no evidence.) With 60 epochs it
#   is no tighter (NC1 0.033, 100 % for good only from epoch 35): the one-cycle schedule
#   stretches over the whole run, so more epochs are not simply a longer terminal phase.
# - **Test split** (135 unseen images, three classes, 30 epochs): NC1 0.020, std of the
#   cosines 0.039, 100 % test accuracy. Neural collapse is claimed only for training
#   data; these three classes are easy, and on harder data expect less collapse on test
#   images.
#
# So the heuristic holds inside the network: at the end of training NC1 falls and the
# silhouette rises from one hidden layer to the next at every depth tried, and the last
# hidden layer is always the most clustered. It does not hold from the input: with three
# classes the first hidden layer (at depth 5 and 8) is less clustered than the pixels. In
# every run here NC1, the spread of the lengths and of the cosines, and NC4 (the nearest
# class mean agrees with the network on every probe image) show the collapse far along,
# NC3 only partly: in the plane of the class means each class is pulled close to its
# vertex of a simplex, and the head only has to tell which vertex is which; in the many
# other directions of the layer the classes still spread (the section 4 table).
