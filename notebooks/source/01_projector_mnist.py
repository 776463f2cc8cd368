# ---
# jupyter:
#   labkit:
#     outputs: [mantis.csv, tensorboard/projector_config.pbtxt, figures/reducers.png, figures/epoch_grid.png]
# ---

# %% [markdown] id="title"
# # Lab 1: watching a CNN learn MNIST in the Embedding Projector
#
# {{badge}}
#
# A classifier turns each image into a vector, its *embedding*, one layer before the output. We train a small CNN on MNIST, record the embeddings of a fixed set of test images before training and after every epoch, and look at them: in TensorBoard's Embedding Projector, in an explorer inside the notebook, and with PCA, t-SNE and UMAP side by side.
#
# {{how_to_run}}

# %% id="parameters" tags=["parameters"]
# This lab's parameters: change them here, then run the notebook again.
DATASET: str = "mnist"
DATA_DIR: str = "data"
EPOCHS: int = 10
PROBE_SIZE: int | None = 2000
SEED: int = 0
REDUCERS: list[str] = ["pca", "tsne", "umap"]
OUT: str = "runs/mnist"

# %% [markdown] id="the-data"
# ## 1. The data
#
# MNIST holds handwritten digits. The kit loads it whole into memory as tensors (the
# training loop then batches by indexing, no per-image work) and picks the **probe
# set**: a fixed, stratified sample of the test split. The probe set is what we
# embed at every epoch, so the same images can be followed through training.

# %% id="data-labkit-load-dataset-datas"
data = labkit.load_dataset(DATASET, data_dir=DATA_DIR, probe_size=PROBE_SIZE, seed=SEED)
data

# %% [markdown] id="the-model-and-its-layers"
# ## 2. The model and its layers
#
# Every layer has a name. The embedding we watch is the output of the
# **penultimate** layer, the last representation before the classifier head.

# %% id="model-labkit-build-model-cnn-d"
model = labkit.build_model("cnn", data.input_shape, data.n_classes, seed=SEED)
print(labkit.layer_names(model))
print("penultimate layer:", labkit.penultimate_layer(model))

# %% [markdown] id="train-recording-the-embeddings"
# ## 3. Train, recording the embeddings
#
# `labkit.train` puts a forward hook on the penultimate layer and records the probe
# set at **epoch 0, before any update**, and after every epoch. The hook is removed
# when training ends, even if it fails.

# %% id="snaps-labkit-train-model-data-"
snaps = labkit.train(model, data, epochs=EPOCHS, seed=SEED)
pd.DataFrame(snaps.history).set_index("epoch").round(4)

# %% [markdown] id="text-6"
# **Look for:** at epoch 0 the test accuracy is chance (about 10 %): the untrained
# network already maps images to vectors, but not usefully. Expect about 99 % at
# the end.

# %% [markdown] id="the-embedding-projector"
# ## The Embedding Projector
#
# We write the projector logs (one tensor per epoch, with the titles and labels as
# metadata) and open TensorBoard, shown below the cell: locally from
# http://127.0.0.1:6006 (or the next free port), on Colab through Colab's own proxy.
# The projector does not load in Safari: use Chrome or Firefox, or the explorer in the
# next section.
#
# *Optional, on Colab:* for TensorBoard in a full browser window, the kit can open an
# ngrok tunnel (ngrok is a free service that gives TensorBoard its own
# password-protected web address). It needs your ngrok token as a Colab secret; the
# steps are printed under the cell. Never paste a token into a cell: notebooks get
# shared.

# %% id="labkit-write-projector-snaps-f"
labkit.write_projector(snaps, f"{OUT}/tensorboard")
tb = labkit.open_tensorboard(f"{OUT}/tensorboard")

# %% [markdown] id="text-9"
# In the Projector tab, pick `01_embed/epoch_00`, colour by `label`, and look at
# the PCA view; then pick the last epoch. Switch to T-SNE and UMAP.
#
# **Question 1.** How does the picture change from epoch 0 to the last epoch? Which
# classes separate first?

# %% [markdown] id="the-explorer-the-same-embeddin"
# ## The explorer: the same embeddings inside the notebook
#
# The explorer needs no TensorBoard and no tunnel. Drag the epoch slider (or press
# play) and watch every point travel from epoch 0 to the end; colour the points by
# `label`, `prediction` or `correct` (right/wrong); hover over a point for its
# title and picture; click one (shift-drag to lasso several) to list its nearest
# neighbours in the full embedding, not just in this 2-D picture (a PCA of each epoch, rotated to line up with the next; section 4 explains PCA).

# %% id="labkit-explore-snaps"
labkit.explore(snaps)

# %% [markdown] id="pca-t-sne-and-umap-on-the-same"
# ## 4. PCA, t-SNE and UMAP on the same embedding
#
# PCA is a rotation followed by dropping the dimensions of least variance: it keeps
# the global geometry, and distances in the picture are never larger than in the
# embedding. t-SNE and UMAP keep *neighbourhoods*, and bend distances freely to do
# it. *Trustworthiness* measures how well a view keeps neighbourhoods (1 = no
# false neighbours).
#
# **Exercise 1.** Project the last epoch's embeddings with every method in
# `REDUCERS` (`labkit.reduce.reduce(last, method, seed=SEED)`) into a dict `views`,
# and score each with `labkit.reduce.trustworthiness(last, view)` into a dict
# `scores`.

# %% id="ex-last-snaps-layer-1-probe-size-" exercise
last = snaps.layer()[-1]  # [probe size, embedding dim] at the last epoch
### BEGIN SOLUTION
views = {m: labkit.reduce.reduce(last, m, seed=SEED) for m in REDUCERS}
scores = {m: labkit.reduce.trustworthiness(last, xy) for m, xy in views.items()}
### END SOLUTION

# %% id="plots-compare-views-snaps-scor"
plots.compare(views, snaps, scores, path=f"{OUT}/figures/reducers.png");

# %% [markdown] id="text-15"
# **Question 2.** Which view would you use to judge how far apart two classes are?
# Which to see which images are confused with which? Why?

# %% [markdown] id="from-epoch-0-to-the-end-in-one"
# ## 5. From epoch 0 to the end, in one frame
#
# Each epoch gets its own PCA; Orthogonal Procrustes rotates each into the frame of
# the one before, so points do not jump between panels.

# %% id="traj-align-trajectory-snaps-me"
traj = align.trajectory(snaps, method="pca")
plots.epoch_grid(traj, snaps, method="pca", path=f"{OUT}/figures/epoch_grid.png");

# %% [markdown] id="text-18"
# **Question 3.** Find two classes that overlap at the last epoch. Look at their
# thumbnails in the projector (search by label): what do the overlapping images
# have in common?

# %% id="labkit-write-mantis-csv-snaps-"
labkit.write_mantis_csv(snaps, f"{OUT}/mantis.csv")
print("Mantis CSV:", f"{OUT}/mantis.csv")

# %% [markdown] id="clean-up"
# ## Clean up
#
# TensorBoard (and the tunnel, if you opened one) keeps running in the background until
# you stop it: when you are done with the projector, remove the `#` and run the cell.

# %% id="labkit-serve-stop-all-labkit-s"
# labkit.serve.stop_all(); labkit.stop_tunnels()
