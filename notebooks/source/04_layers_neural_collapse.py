# ---
# jupyter:
#   labkit:
#     outputs: [figures/layer_grid.png, figures/metric_curves.png, figures/cka_layers.png]
# ---

# %% [markdown] id="title"
# # Lab 4: layer by layer, and neural collapse
#
# {{badge}}
#
# Do deeper layers give better clusters? We train a deep MLP to 100 % training accuracy, record every layer, and measure: projections per layer, cluster metrics, and neural collapse of the penultimate layer.
#
# {{how_to_run}}

# %% id="parameters" tags=["parameters"]
# This lab's parameters: change them here, then run the notebook again.
DATASET: str = "digits"
DATA_DIR: str = "data"
EPOCHS: int = 30
DEPTH: int = 5
PROBE_SIZE: int | None = None  # the whole test split, at most 2000 points
SEED: int = 0
OUT: str = "runs/layers"

# %% [markdown] id="a-deep-mlp-every-layer-recorde"
# ## 1. A deep MLP, every layer recorded
#
# We train an MLP with `DEPTH` hidden layers until it classifies every training
# image correctly, recording the embedding of **every** layer at every epoch.

# %% id="data-labkit-load-dataset-datas"
data = labkit.load_dataset(DATASET, data_dir=DATA_DIR, probe_size=PROBE_SIZE, seed=SEED)
model = labkit.build_model("deep-mlp", data.input_shape, data.n_classes, seed=SEED, depth=DEPTH)
snaps = labkit.train(model, data, epochs=EPOCHS, layers="all", seed=SEED)
snaps

# %% [markdown] id="svd-projections-layer-by-layer"
# ## 2. SVD projections, layer by layer
#
# The same test images at the last epoch, seen through each layer (PCA computed by
# the SVD, each layer rotated into the frame of the one before).

# %% id="lt-align-layer-trajectory-snap"
lt = align.layer_trajectory(snaps, method="pca")
plots.layer_grid(lt, snaps, method="pca (SVD)", path=f"{OUT}/figures/layer_grid.png");

# %% [markdown] id="measuring-the-clusters"
# ## 3. Measuring the clusters
#
# For every layer and epoch: **NC1** (within-class spread relative to the spread of
# the class means; 0 = every image on its class mean), the **silhouette** of the
# classes, and the accuracy of a k-nearest-neighbour and a linear probe trained on
# half of the probe set.

# %% id="table-metrics-geometry-snaps"
table = metrics.geometry(snaps)
plots.metric_curves(table, snaps, path=f"{OUT}/figures/metric_curves.png");

# %% [markdown] id="text-6"
# **Exercise 1.** From `table`, make `last`: the rows of the last epoch indexed by
# layer, with columns `nc1`, `silhouette` and `knn_acc`. Set `better_with_depth` to
# whether the silhouette grows from each layer to the next.

# %% id="ex-begin-solution" exercise
### BEGIN SOLUTION
last = table[table.epoch == table.epoch.max()].set_index("layer")[["nc1", "silhouette", "knn_acc"]]
better_with_depth = bool((last["silhouette"].diff().dropna() > 0).all())
### END SOLUTION
print(last.round(3))
print("better clusters with depth:", better_with_depth)

# %% [markdown] id="does-the-penultimate-layer-col"
# **Question 1.** Is "better clusters with depth" true here? Is the kNN accuracy
# better with depth too, and by as much?
#
# ## 4. Does the penultimate layer collapse to k points?
#
# Neural collapse predicts that at the end of training the class means of the
# penultimate layer form a *simplex*: equal lengths, and every pair at the same
# angle, with cosine -1/(C-1).

# %% id="nc-metrics-neural-collapse-sna"
nc = metrics.neural_collapse(snaps.layer()[-1], snaps.labels, snaps.head_weights[-1],
                             snaps.predictions[-1])
c = len(snaps.class_names)
print(f"NC1 at epoch 0: {table.query('epoch == 0').nc1.iloc[-1]:.3f}, at the end: {nc['nc1']:.3f}")
print(f"mean cosine between class means: {nc['nc2_mean_cosine']:.3f} (simplex: {-1 / (c - 1):.3f})")
print(f"classifier vs class means (NC3, 0 = aligned): {nc['nc3']:.3f}")
print(f"nearest-class-mean agrees with the model (NC4): {nc['nc4_agreement']:.1%}")

# %% id="reps-snaps-layer-name-1-for-na"
reps = [snaps.layer(name)[-1] for name in snaps.layers]
plots.cka_heatmap(metrics.cka_matrix(reps), snaps.layers,
                  path=f"{OUT}/figures/cka_layers.png", title="linear CKA between layers");

# %% [markdown] id="text-11"
# **Question 2.** How close is the penultimate layer to the simplex? Which layers
# are most alike according to CKA, and does that match the pictures in section 2?
