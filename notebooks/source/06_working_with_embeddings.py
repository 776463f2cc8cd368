# ---
# jupyter:
#   labkit:
#     outputs: [figures/agreement.png, figures/neighbours.png, figures/confident_mistake.png]
# ---

# %% [markdown] id="title"
# # Lab 6: working with embeddings
#
# {{badge}}
#
# What practitioners do with embeddings once they have them: find where the model and the labels disagree, search for similar items, flag labels that may be wrong, and group failures into patterns.
#
# {{how_to_run}}

# %% id="parameters" tags=["parameters"]
# This lab's parameters: change them here, then run the notebook again.
DATASET: str = "digits"
DATA_DIR: str = "data"
EPOCHS: int = 10
PROBE_SIZE: int | None = None  # the whole test split, at most 2000 points
SEED: int = 0
OUT: str = "runs/workflows"

# %% id="data-labkit-load-dataset-datas"
data = labkit.load_dataset(DATASET, data_dir=DATA_DIR, probe_size=PROBE_SIZE, seed=SEED)
model = labkit.build_model("cnn", data.input_shape, data.n_classes, seed=SEED)
snaps = labkit.train(model, data, epochs=EPOCHS, seed=SEED)

# %% [markdown] id="where-the-model-disagrees-with"
# ## 1. Where the model disagrees with the labels
#
# Coloured by label, with a black ring where the model's prediction differs.

# %% id="xy-align-trajectory-snaps-meth"
xy = align.trajectory(snaps, method="pca")[-1]
plots.agreement(xy, snaps, path=f"{OUT}/figures/agreement.png")
workflows.disagreement(snaps).set_index("epoch").T

# %% [markdown] id="similarity-search"
# ## 2. Similarity search
#
# The nearest neighbours of a point by cosine similarity of the embeddings: the
# images the model considers most alike.

# %% id="table-workflows-similar-snaps-"
table = workflows.similar(snaps, 0, k=8)
plots.neighbours(snaps, table, path=f"{OUT}/figures/neighbours.png")
table

# %% [markdown] id="text-5"
# The same search in the explorer: it opens on point 0's neighbours (the table
# above) and coloured by `correct` (red = wrong). Click a red point, or shift-drag
# to lasso several, and the neighbours of your selection in the full embedding are
# listed under the plot.

# %% id="labkit-explore-snaps-colour-co"
labkit.explore(snaps, colour="correct").select([0])

# %% [markdown] id="label-error-candidates"
# ## 3. Label-error candidates
#
# A point is a candidate when the model *and* most of its neighbours agree on a
# class other than its label. Candidates are not proof: look before relabelling.

# %% id="candidates-workflows-label-err"
candidates = workflows.label_error_candidates(snaps)
candidates.head(10)

# %% [markdown] id="clusters-of-failures"
# ## 4. Clusters of failures
#
# The misclassified points grouped by where they sit in the embedding: each group
# is a failure pattern, named by its most common confusion.

# %% id="workflows-error-clusters-snaps"
workflows.error_clusters(snaps)

# %% [markdown] id="text-11"
# **Exercise 1.** Take the model's most confident *wrong* prediction (`query`, its
# index in the probe set) and the class name it predicted (`predicted`), find its 8
# nearest neighbours (`nbrs`, with `workflows.similar`), and compute the share of
# them whose label is `predicted` (`share_predicted`). The next lines use all four.

# %% id="ex-begin-solution" exercise
### BEGIN SOLUTION
wrong = np.flatnonzero(~snaps.correct(-1))
confidence = snaps.probabilities[-1][wrong, snaps.predictions[-1][wrong]]
query = int(wrong[confidence.argmax()])
nbrs = workflows.similar(snaps, query, k=8)
predicted = snaps.class_names[snaps.predictions[-1][query]]
share_predicted = float((nbrs["label"] == predicted).mean())
### END SOLUTION
plots.neighbours(snaps, nbrs, path=f"{OUT}/figures/confident_mistake.png")
print(f"{snaps.titles[query]}: label {snaps.label_names[query]}, "
      f"predicted {predicted}; {share_predicted:.0%} of its neighbours carry the prediction")

# %% [markdown] id="text-13"
# **Question 1.** Is the most confident mistake a mistake of the model or of the
# label? What would you check before deciding?
