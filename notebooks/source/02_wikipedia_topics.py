# ---
# jupyter:
#   labkit:
#     outputs: [mantis.csv, tensorboard/projector_config.pbtxt, figures/epoch_grid.png, figures/epochs.html]
# ---

# %% [markdown] id="title"
# # Lab {{lab}}: how a text classifier organises {{name}}{{variant}}
#
# {{badge}}
#
# We turn {{what}} into TF-IDF vectors, train a small MLP to tell the topics apart, and watch the embedding of each article from epoch 0 to the end: in an aligned epoch grid, in the Embedding Projector, in an explorer inside the notebook, and in Mantis (a CSV the kit writes for it).
#
# {{how_to_run}}

# %% id="parameters" tags=["parameters"] only="wikipedia"
# This lab's parameters: change them here, then run the notebook again.
DATASET: str = "wikipedia"
TOPICS: list[str] = ["Machine learning", "Renaissance art", "Basketball"]
PER_TOPIC: int = 100  # search results asked for per topic (stubs are dropped)
API_URL: str = "https://en.wikipedia.org/w/api.php"
DATA_DIR: str = "data"
MODEL: str = "mlp"
EPOCHS: int = 10
LR: float = 1e-3
PROBE_SIZE: int | None = None  # the whole test split, at most 2000 points
SEED: int = 0
REDUCER: str = "umap"
OUT: str = "runs/wikipedia"

# %% id="parameters-bbc" tags=["parameters"] only="bbc"
# This lab's parameters: change them here, then run the notebook again.
DATASET: str = "bbc"
CSV: str = "https://storage.googleapis.com/dataset-uploaded/bbc/bbc-text.csv"
DATA_DIR: str = "data"
MODEL: str = "mlp"
EPOCHS: int = 10
LR: float = 1e-3
PROBE_SIZE: int | None = None  # the whole test split, at most 2000 points
SEED: int = 0
REDUCER: str = "umap"
OUT: str = "runs/bbc"

# %% [markdown] id="fetch-the-articles" only="wikipedia"
# ## 1. Fetch the articles
#
# For each topic the kit searches Wikipedia and downloads the plain-text intro of
# each article, politely: one request at a time, waiting when the servers ask it
# to. Every article is cached under `data/wikipedia_articles/`, so running this
# again (or on a classmate's machine with that folder) needs no network. The table
# shows how many articles each topic kept; an article two topics both find goes to
# the topic whose search ranked it higher.

# %% id="fetch" only="wikipedia"
data = labkit.load_dataset(DATASET, data_dir=DATA_DIR, probe_size=PROBE_SIZE, seed=SEED,
                           topics=TOPICS, per_topic=PER_TOPIC, api_url=API_URL)

# %% [markdown] id="load-the-articles" only="bbc"
# ## 1. Load the articles
#
# {{what}}. The CSV is downloaded once into `data/`.

# %% id="load" only="bbc"
data = labkit.load_dataset(DATASET, data_dir=DATA_DIR, probe_size=PROBE_SIZE, seed=SEED, csv=CSV)

# %% id="pd-dataframe-title-data-titles"
pd.DataFrame({"title": data.titles,
              "topic": [data.class_names[i] for i in data.y_probe],
              "snippet": data.snippets}).head(8)

# %% [markdown] id="from-text-to-vectors"
# ## 2. From text to vectors
#
# Each article becomes a TF-IDF vector: one number per word of the vocabulary,
# large when the word is frequent in this article and rare elsewhere. The
# vocabulary is learnt from the training split only, so the test articles stay
# unseen.

# %% id="print-training-matrix-tuple-da"
print("training matrix:", tuple(data.x_train.shape), " vocabulary:", data.info["vocabulary"])

# %% [markdown] id="train-an-mlp-recording-every-e"
# ## 3. Train an MLP, recording every epoch
#
# The embedding is the output of the MLP's last hidden layer, recorded for the
# probe articles at epoch 0 (before any update) and after each epoch.

# %% id="model-labkit-build-model-mlp-d"
model = labkit.build_model(MODEL, data.input_shape, data.n_classes, seed=SEED)
snaps = labkit.train(model, data, epochs=EPOCHS, lr=LR, seed=SEED)
pd.DataFrame(snaps.history).set_index("epoch").round(4)

# %% [markdown] id="the-mantis-csv"
# ## 4. The Mantis CSV
#
# One row per article: `title`, `categoric` (its topic), the snippet, the model's
# prediction, and one column `embedding_epoch_k` per epoch, each a list of numbers.
# `coordinate1`/`coordinate2` give Mantis a ready projection of the last epoch.

# %% id="labkit-write-mantis-csv-snaps-"
labkit.write_mantis_csv(snaps, f"{OUT}/mantis.csv", coordinates=2)
pd.read_csv(f"{OUT}/mantis.csv").iloc[:3, :6]

# %% [markdown] id="epoch-0-to-the-end-aligned"
# ## 5. Epoch 0 to the end, aligned
#
# Each epoch is projected (UMAP starts from the previous epoch's layout) and
# rotated into one frame, so you can follow each article.

# %% id="traj-align-trajectory-snaps-me"
traj = align.trajectory(snaps, method=REDUCER)
plots.epoch_grid(traj, snaps, method=REDUCER, path=f"{OUT}/figures/epoch_grid.png");

# %% id="hover-over-a-point-for-its-tit"
# Hover over a point for its title; drag the slider through the epochs. Saved as
# a web page too (figures/epochs.html), to open in a browser or hand in.
plots.interactive(traj, snaps, path=f"{OUT}/figures/epochs.html")

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

# %% [markdown] id="the-explorer-the-same-embeddin"
# ## The explorer: the same embeddings inside the notebook
#
# The explorer needs no TensorBoard and no tunnel. Drag the epoch slider (or press
# play) and watch every point travel from epoch 0 to the end; colour the points by
# `label`, `prediction` or `correct` (right/wrong); hover over a point for its
# title and the start of the article; click one (shift-drag to lasso several) to list its nearest
# neighbours in the full embedding, not just in this 2-D picture (the trajectory of section 5; unlike the figure above, it finds neighbours).

# %% id="labkit-explore-snaps-traj-the-"
labkit.explore(snaps, traj)  # the aligned trajectory of section 5

# %% [markdown] id="text-16"
# **Question 1.** At which epoch do the topics separate? Are some articles still
# between two clusters at the end?
#
# **Exercise 1.** Make a DataFrame `mistakes` of the probe articles the model gets
# wrong at the last epoch, with their `title`, `topic`, `prediction` and `snippet`.

# %% id="ex-begin-solution" exercise
### BEGIN SOLUTION
wrong = ~snaps.correct(-1)
mistakes = pd.DataFrame({
    "title": np.array(snaps.titles)[wrong],
    "topic": np.array(snaps.label_names)[wrong],
    "prediction": [snaps.class_names[p] for p in snaps.predictions[-1][wrong]],
    "snippet": np.array(snaps.snippets)[wrong],
})
### END SOLUTION
mistakes

# %% [markdown] id="text-18"
# **Question 2.** Read the snippets of the mistakes. Is the model wrong, or is the
# article really about two topics? What does that say about the overlapping points
# in the picture?

# %% [markdown] id="clean-up"
# ## Clean up
#
# TensorBoard (and the tunnel, if you opened one) keeps running in the background until
# you stop it: when you are done with the projector, remove the `#` and run the cell.

# %% id="labkit-serve-stop-all-labkit-s"
# labkit.serve.stop_all(); labkit.stop_tunnels()
