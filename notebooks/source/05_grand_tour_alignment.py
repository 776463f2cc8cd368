# ---
# jupyter:
#   labkit:
#     outputs: [figures/tour.gif, figures/epochs.gif, figures/two_models.png]
# ---

# %% [markdown] id="title"
# # Lab 5: the Grand Tour, and alignment across epochs and models
#
# {{badge}}
#
# Projections of one embedding differ from run to run and epoch to epoch by rotations and flips. We take them out with Orthogonal Procrustes, tour a 15-dimensional view smoothly, and compare two different models in one frame.
#
# {{how_to_run}}

# %% id="parameters" tags=["parameters"]
# This lab's parameters: change them here, then run the notebook again.
DATASET: str = "digits"
DATA_DIR: str = "data"
EPOCHS: int = 10
PROBE_SIZE: int | None = None  # the whole test split, at most 2000 points
TOUR_DIMS: int = 15
TOUR_FRAMES: int = 90
SEED: int = 0
OUT: str = "runs/tour"

# %% id="data-labkit-load-dataset-datas"
data = labkit.load_dataset(DATASET, data_dir=DATA_DIR, probe_size=PROBE_SIZE, seed=SEED)
model = labkit.build_model("cnn", data.input_shape, data.n_classes, seed=SEED)
snaps = labkit.train(model, data, epochs=EPOCHS, seed=SEED)

# %% [markdown] id="the-grand-tour"
# ## 1. The Grand Tour
#
# A 2-D picture must drop dimensions. The Grand Tour shows *many* 2-D linear views
# in a smooth sequence, rotating the data in every plane at once. Every view is a
# plain projection, so what you see is really in the data. We first reduce to
# `TOUR_DIMS` dimensions with UMAP, then tour them.

# %% id="x-labkit-reduce-reduce-snaps-l"
x = labkit.reduce.reduce(snaps.layer()[-1], "umap", n_components=TOUR_DIMS, seed=SEED)
frames = labkit.tour.grand_tour(x, n_frames=TOUR_FRAMES, seed=SEED)
plots.tour_animation(frames, snaps, path=f"{OUT}/figures/tour.gif")
display(Image(filename=f"{OUT}/figures/tour.gif"))

# %% [markdown] id="aligned-across-epochs"
# **Question 1.** Some classes stay apart in every view; others only in some. What
# does that tell you about how many dimensions separate them?
#
# ## 2. Aligned across epochs
#
# UMAP per epoch, each started from the previous layout and rotated into one frame
# (Orthogonal Procrustes), played as an animation.

# %% id="traj-align-trajectory-snaps-me"
traj = align.trajectory(snaps, method="umap", seed=SEED)
plots.animate(traj, snaps, path=f"{OUT}/figures/epochs.gif")
display(Image(filename=f"{OUT}/figures/epochs.gif"))

# %% [markdown] id="two-models-one-frame"
# ## 3. Two models, one frame
#
# A second model, an MLP that sees the pixels as a flat vector, learns from the
# same data. Its pictures come out in an arbitrary orientation; Procrustes fitted
# on the whole trajectory brings them into the CNN's frame without changing them.
#
# **Exercise 1.** Put the MLP's trajectory into the CNN's frame with
# `align.align_runs` (call it `mlp_in_cnn_frame`), and compute the linear CKA
# between the two models' last-epoch embeddings (`cka`).

# %% id="mlp-labkit-build-model-mlp-dat"
mlp = labkit.build_model("mlp", data.input_shape, data.n_classes, seed=SEED)
snaps_mlp = labkit.train(mlp, data, epochs=EPOCHS, seed=SEED)
traj_cnn = align.trajectory(snaps, method="pca")
traj_mlp = align.trajectory(snaps_mlp, method="pca")

# %% id="ex-begin-solution" exercise
### BEGIN SOLUTION
mlp_in_cnn_frame = align.align_runs(traj_cnn, traj_mlp)
cka = metrics.linear_cka(snaps.layer()[-1], snaps_mlp.layer()[-1])
### END SOLUTION
plots.compare({"CNN": traj_cnn[-1], "MLP, in the CNN's frame": mlp_in_cnn_frame[-1]},
              snaps, path=f"{OUT}/figures/two_models.png")
print(f"linear CKA between the two models' embeddings: {cka:.3f}")

# %% [markdown] id="text-8"
# **Question 2.** Do the two models put the same classes next to each other? Does
# the CKA value agree with what you see?
