# ---
# jupyter:
#   labkit:
#     outputs: [mantis.csv, tensorboard/projector_config.pbtxt, figures/epoch_grid.png,
#       figures/epochs.html]
# ---

# %% [markdown] id="title"
# # Lab {{lab}}: how a text classifier organises {{name}}{{variant}}
#
# {{badge}}
#
# We turn {{what}} into TF-IDF vectors, train a small MLP to tell the topics apart, and
# watch the embedding of each article from epoch 0 to the end: in an aligned epoch grid, in
# the Embedding Projector, in an explorer inside the notebook, and in Mantis (a CSV the kit
# writes for it).
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
METHOD: str = "umap"
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
METHOD: str = "umap"
OUT: str = "runs/bbc"

# %% [markdown] id="fetch-intro" only="wikipedia"
# ## 1. Fetch the articles
#
# For each topic the kit asks Wikipedia's search for `PER_TOPIC` results and downloads the
# plain-text intro of each article, politely: one request at a time, waiting when the
# servers ask it to. Every article is cached under `data/wikipedia_articles/`, so running
# this again (or on a classmate's machine with that folder) needs no network. The table
# shows how many articles each topic kept; an article two topics both find goes to the
# topic whose search ranked it higher. An article's label is the topic whose search found
# it, not a reader's judgement.

# %% id="fetch" only="wikipedia"
data = labkit.load_dataset(DATASET, data_dir=DATA_DIR, probe_size=PROBE_SIZE, seed=SEED,
                           topics=TOPICS, per_topic=PER_TOPIC, api_url=API_URL)

# %% [markdown] id="load-intro" only="bbc"
# ## 1. Load the articles
#
# The data set holds {{what}}. The CSV is downloaded once into `data/`. An article's label
# is the section the BBC filed it under.

# %% id="load" only="bbc"
data = labkit.load_dataset(DATASET, data_dir=DATA_DIR, probe_size=PROBE_SIZE, seed=SEED, csv=CSV)

# %% [markdown] id="the-probe-articles"
# The articles are split into a training and a test split. The *probe* articles, whose
# embeddings we record at every epoch, are the test split (or `PROBE_SIZE` of it); the
# first few:

# %% id="probe-table"
pd.DataFrame({"title": data.titles,
              "topic": [data.class_names[i] for i in data.y_probe],
              "snippet": data.snippets}).head(8)

# %% [markdown] id="from-text-to-vectors"
# ## 2. From text to vectors
#
# A network needs numbers, so each article becomes a TF-IDF vector: one number per word
# of the vocabulary (the most frequent words of the training split, with English stop
# words such as *the* left out). A word's weight in an article is its *term frequency*
# (how often it occurs in this article, on a log scale) times its *inverse document
# frequency* (high when few training articles contain it); each vector is then scaled to
# length 1. Why both: a word repeated in an article says what the article is about, but
# only if it is rare elsewhere; a word found in nearly every article cannot tell one
# topic from another, so its weight stays low. The vocabulary and the document
# frequencies come from the training split only, so the test articles stay unseen.
#
# `data.info["terms"]` names the columns: `TERMS[j]` is the word of column `j`.

# %% id="tfidf-shape"
TERMS = data.info["terms"]  # a list of str, one per column of data.x_train
print("training matrix:", tuple(data.x_train.shape), " vocabulary:", len(TERMS))

# The heaviest words of the first probe article: what its vector says about it.
x0 = data.x_probe[0].numpy()
print(data.titles[0], "->", ", ".join(TERMS[j] for j in np.argsort(-x0)[:8]))

# %% [markdown] id="top-words-task"
# Which words does TF-IDF find typical of each topic? Write
# `top_words(x, y, terms, class_names, k=10)`. Its inputs: `x`, a NumPy array
# `[n_articles, n_terms]` of TF-IDF weights; `y`, the topic index of each row (`0` to
# `len(class_names) - 1`); `terms`, the word of each column; `class_names`, the topic
# names. For each topic, average the rows of that topic's articles (`x[y == c].mean(axis=0)`)
# and keep the `k` terms with the highest mean weight, best first (`np.argsort(-m)` orders
# the columns from the largest). Return a dict `{topic name: list of k words}` with the
# topics in the order of `class_names`. The cell then calls it on the training split; the
# table below reads `words`.

# %% id="top-words" exercise
def top_words(x: np.ndarray, y: np.ndarray, terms: list[str], class_names: list[str],
              k: int = 10) -> dict[str, list[str]]:
    """The k terms of highest mean TF-IDF weight over each topic's articles, best first."""
    ### BEGIN SOLUTION
    words = {}
    for c, name in enumerate(class_names):
        mean = x[y == c].mean(axis=0)  # the mean weight of every term over this topic
        best = np.argsort(-mean, kind="stable")[:k]  # the k heaviest columns, best first
        words[name] = [terms[j] for j in best]
    return words
    ### END SOLUTION


words = top_words(data.x_train.numpy(), data.y_train.numpy(), TERMS, data.class_names)

# %% id="top-words-check" test points=3
assert isinstance(words, dict), (
    f"top_words should return a dict {{topic name: list of words}}, not a {type(words).__name__}")
assert list(words) == list(data.class_names), (
    f"the keys should be the topic names in the order of data.class_names, "
    f"{data.class_names}; got {list(words)}")
for topic, ws in words.items():
    assert len(ws) == 10, (
        f"{topic!r}: {len(ws)} words instead of k=10; keep the first k of the sorted columns")
    assert all(isinstance(w, str) and w in TERMS for w in ws), (
        f"{topic!r}: {ws} should be words from `terms` (terms[j] for the best columns j), "
        f"not column numbers")
    assert len(set(ws)) == 10, f"{topic!r}: a word appears twice in {ws}; pick k different columns"
# A small case to check by hand: topic P's articles weigh "a" most, then "b"; Q's "c", then "b".
_x = np.array([[0.9, 0.1, 0.0, 0.0], [0.7, 0.3, 0.0, 0.0],
               [0.0, 0.2, 0.8, 0.0], [0.0, 0.4, 0.0, 0.2]])
_small = top_words(_x, np.array([0, 0, 1, 1]), ["a", "b", "c", "d"], ["P", "Q"], k=2)
assert _small == {"P": ["a", "b"], "Q": ["c", "b"]}, (
    f"on the four articles above (two per topic) the answer is {{'P': ['a', 'b'], 'Q': "
    f"['c', 'b']}}, but you got {_small}: average each term over the topic's articles, "
    f"x[y == c].mean(axis=0), one mean per column (axis=1 would average each article over "
    f"its terms), then keep the k columns with the largest means")
### BEGIN HIDDEN TESTS
# Against pandas: the mean per topic, then nlargest. Equal means may come in either order,
# so compare the means of the chosen words, in order.
_means = pd.DataFrame(data.x_train.numpy().astype(np.float64), columns=TERMS).groupby(
    data.y_train.numpy()).mean()
for _c, _topic in enumerate(data.class_names):
    _expected = _means.loc[_c].nlargest(10)
    assert np.allclose(_means.loc[_c, words[_topic]].to_numpy(), _expected.to_numpy(),
                       atol=1e-6), (_topic, words[_topic], list(_expected.index))
# The hand-made case with the topics swapped and k=1: k is obeyed, the labels are used.
_small = top_words(_x, np.array([1, 1, 0, 0]), ["a", "b", "c", "d"], ["P", "Q"], k=1)
assert _small == {"P": ["c"], "Q": ["a"]}, _small
### END HIDDEN TESTS

# %% id="top-words-table"
table = pd.DataFrame(words)  # one column per topic, the heaviest word first
table.index += 1
table

# %% [markdown] id="q-top-words" question
# Read the table. Would you have picked these words to describe each topic? Which words
# appear under more than one topic, and what does the table say about how hard it is to
# tell the topics apart before any training?

# %% [markdown] id="a-top-words" answer points=2
# *Example answer for the default topics (yours depend on the topics you chose):* The lists
# read like short descriptions of the topics and overlap little. With the default Wikipedia
# topics expect words such as *learning*, *data* and *algorithms* under Machine learning,
# *art*, *painting* and *italian* under Renaissance art, *basketball*, *nba* and *team*
# under Basketball; on BBC News, *film* and *music* (entertainment), *labour* and
# *election* (politics), *mobile* and *software* (tech), *market* and *company* (business).
# A word that several lists share (on BBC News *said*, used in nearly every story) keeps
# some weight despite its low inverse document frequency, but it cannot tell the topics
# apart. Since each topic has several heavy words of its own, the topics are nearly
# separable from single words: the classifier's task is easy, which is why the accuracy
# climbs within a few epochs.

# %% [markdown] id="q-tfidf-blind" question
# A TF-IDF vector records which words of the vocabulary an article uses, and how heavily.
# Name things about an article that its vector cannot see, and point to an example among the
# words of the `top_words` table (or the heaviest words of the first probe article).

# %% [markdown] id="a-tfidf-blind" answer points=2
# It cannot see word order: *the dog bit the man* and *the man bit the dog* get the same
# vector. It cannot see negation: *not*, *no* and *never* are English stop words and are
# dropped, so *not a painting* counts as *painting*. It cannot see meaning: every word is
# its own column, so synonyms (*painter* and *artist*) are as unrelated as any two words,
# the forms of one word are separate columns (the table may list both *painting* and
# *paintings*, or *game* and *games*), and a word with two senses (*court*, *network*,
# *model*) is one column whatever it means in the article. And it cannot see words outside
# its vocabulary: only the 5000 most frequent words of the training split that occur in at
# least two training articles get a column; any other word, such as a name that only a test
# article uses, weighs nothing, and an article with none of the vocabulary's words becomes
# the zero vector. What is left is the table's view of a topic, a list of typical words; the
# network can only reweight and combine these columns, not recover what they lost.

# %% [markdown] id="train-intro"
# ## 3. Train an MLP, recording every epoch
#
# The model (`MODEL`: two hidden layers of 256 and 64 units, each linear, batch norm and
# ReLU, then a linear layer with one output per topic) trains for `EPOCHS` epochs with
# learning rate `LR`. The embedding is the output of the last hidden layer, 64 numbers
# per article, recorded for the probe articles at epoch 0 (before any update) and after
# each epoch. The table is the history: loss and accuracy per epoch.

# %% id="train"
model = labkit.build_model(MODEL, data.input_shape, data.n_classes, seed=SEED)
snaps = labkit.train(model, data, epochs=EPOCHS, lr=LR, seed=SEED)
pd.DataFrame(snaps.history).set_index("epoch").round(4)

# %% [markdown] id="aligned-intro"
# ## 4. Epoch 0 to the end, aligned
#
# Each epoch is projected to 2-D (`METHOD`) and rotated into one frame by Orthogonal
# Procrustes (the rotation, possibly with a reflection, that best lines up two sets of
# matching points; Lab 5 has you write it), so you can follow each article. With UMAP
# each epoch starts from the previous epoch's layout and gets a short optimisation whose
# step size is proportional to how much the neighbourhoods changed since the epoch
# before (on average over the articles, the share of their 15 nearest neighbours in the
# embedding that are new): the layout moves a lot in the first epochs and little at the
# end.

# %% id="epoch-grid"
traj = align.trajectory(snaps, method=METHOD)
plots.epoch_grid(traj, snaps, method=METHOD, path=f"{OUT}/figures/epoch_grid.png");

# %% id="interactive"
# Hover over a point for its title; drag the slider through the epochs. Saved as
# a web page too (figures/epochs.html), to open in a browser or hand in.
plots.interactive(traj, snaps, path=f"{OUT}/figures/epochs.html")

# %% [markdown] id="q-alignment" question
# Why is each epoch's projection rotated into the frame of the one before? What would you
# see in the grid without that step?

# %% [markdown] id="a-alignment" answer points=2
# A projection fixes the points only up to a rotation, a reflection, a scale and a shift:
# PCA's axes can flip sign from one epoch to the next, and UMAP or t-SNE run anew can put
# the same clusters anywhere. Without alignment the points would jump between panels even
# where the embedding hardly changed, and no article could be followed. Orthogonal
# Procrustes finds the rotation (with scale and shift) that best maps each epoch's layout
# onto the previous one and removes only that arbitrary part; what still moves in the grid
# is change in the layout. With PCA (one common set of axes for all epochs) that is change
# in the embedding. With UMAP it is partly UMAP's own doing: each epoch is a new
# optimisation, which can move points whose neighbours did not change. The kit keeps that
# small (each epoch starts from the previous layout, and moves less the less the
# neighbourhoods changed), but a point that moves in a UMAP grid is a hint to check in the
# embedding itself (its neighbours in the explorer of section 6), not proof that it moved.

# %% [markdown] id="q-separate" question
# Using the history table of section 3 and the grid: at which epoch do the topics
# separate, and what changes after that?

# %% [markdown] id="a-separate" answer points=2
# At epoch 0 the test accuracy is at chance ({{chance}}) and the grid shows one mixed
# cloud. Within the first two or three epochs the accuracy jumps to near its final value,
# {{expected}}, and the grid shows the topics pulling apart into clusters at the same time.
# After that the accuracy changes little, but the loss keeps falling and the clusters keep
# tightening and moving apart: the geometry goes on improving after the decisions are made.

# %% [markdown] id="topic-distances-intro"
# How far apart do the topics move? The cell below measures, at epoch 0 and at the last
# epoch, the distance between the centres (mean embeddings) of every two topics, in units
# of the mean distance of an article from its own topic's centre: at about 1 two topics'
# clouds are about as far apart as they are wide; far above 1 they are well apart. Units,
# not raw distances, because the whole embedding grows during training.

# %% id="topic-distances"
def centre_distances(x: np.ndarray) -> pd.DataFrame:
    """Distances between topic centres, in units of the mean distance to one's own centre."""
    topics = range(len(snaps.class_names))
    centres = np.stack([x[snaps.labels == t].mean(axis=0) for t in topics])
    spread = np.linalg.norm(x - centres[snaps.labels], axis=1).mean()
    gaps = np.linalg.norm(centres[:, None] - centres[None], axis=2) / spread
    return pd.DataFrame(gaps, index=snaps.class_names, columns=snaps.class_names)


emb = snaps.layer()
pd.concat({"epoch 0": centre_distances(emb[0]),
           f"epoch {snaps.epochs}": centre_distances(emb[-1])}).round(2)

# %% [markdown] id="q-distances" question
# How did the distances between the topic centres change from epoch 0 to the last epoch,
# and which two topics end closest? Quote the table. Then predict the table for
# `TOPICS = ["Machine learning", "Pure mathematics", "Renaissance art"]`: which pair ends
# closest, and how does its distance change from epoch 0? Say why.

# %% [markdown] id="a-distances" answer points=2
# *(What to expect; the numbers depend on your topics and run.)* At epoch 0 every pair
# of centres is close, about one unit or less: the untrained network maps all the
# articles into one cloud. At the last epoch every pair is several units apart: training
# pulls each topic's articles towards their centre and pushes the centres apart, because
# the cross-entropy loss falls only when the head can separate the topics. The closest
# pair is the one whose articles share most vocabulary: with the default topics, all
# three unrelated, the gaps are similar; on BBC News, expect business closest to politics
# and to tech (stories on the economy, taxes and technology companies). With "Machine
# learning", "Pure mathematics" and "Renaissance art", expect the two related topics to
# end the closest pair, their gap growing the least, while "Renaissance art" moves far
# from both: their articles share words (function, theorem, probability, model), so their
# TF-IDF vectors overlap and some articles could belong to either; the network separates
# them only as far as the words allow. The unrelated topic shares almost no words with
# them and is easy to push away.

# %% [markdown] id="the-embedding-projector" optional
# ## 5. The Embedding Projector
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

# %% id="write-projector"
labkit.write_projector(snaps, f"{OUT}/tensorboard")
tb = labkit.open_tensorboard(f"{OUT}/tensorboard")

# %% [markdown] id="the-explorer"
# ## 6. The explorer: the same embeddings inside the notebook
#
# The explorer needs no TensorBoard and no tunnel. Drag the epoch slider (or press
# play) and watch every point travel from epoch 0 to the end; colour the points by
# `label`, `prediction` or `correct` (right/wrong); hover over a point for its
# title and the start of the article. Click one (shift-drag to lasso several) to list its
# nearest neighbours in the full 64-number embedding, not just in this 2-D picture. The
# positions are the aligned trajectory of section 4.

# %% id="explore"
labkit.explore(snaps, traj)  # the aligned trajectory of section 4

# %% [markdown] id="the-mistakes"
# ## 7. The articles the model gets wrong
#
# Make a DataFrame `mistakes` with one row per probe article whose prediction at the last
# epoch differs from its label, and exactly the columns `title`, `topic` (its label, as a
# topic name), `prediction` (the model's answer, as a topic name) and `snippet`. From
# `snaps` you need: `snaps.correct(-1)`, a boolean array that is `True` where the last
# epoch's prediction is right; `snaps.titles` and `snaps.snippets`, lists of str;
# `snaps.labels` and `snaps.predictions[-1]`, arrays of topic indices; and
# `snaps.class_names`, which turns an index into a name. If the model makes no mistake,
# `mistakes` has the columns and no rows.

# %% id="mistakes" exercise
### BEGIN SOLUTION
wrong = ~snaps.correct(-1)
mistakes = pd.DataFrame({
    "title": np.array(snaps.titles, dtype=object)[wrong],
    "topic": [snaps.class_names[i] for i in snaps.labels[wrong]],
    "prediction": [snaps.class_names[i] for i in snaps.predictions[-1][wrong]],
    "snippet": np.array(snaps.snippets, dtype=object)[wrong],
})
### END SOLUTION
mistakes

# %% id="mistakes-check" test points=2
assert isinstance(mistakes, pd.DataFrame), "mistakes should be a pandas DataFrame"
assert list(mistakes.columns) == ["title", "topic", "prediction", "snippet"], (
    f"the columns should be exactly title, topic, prediction, snippet (in that order); "
    f"got {list(mistakes.columns)}")
_n_wrong = int((~snaps.correct(-1)).sum())
assert len(mistakes) == _n_wrong, (
    f"the model gets {_n_wrong} probe articles wrong at the last epoch, but mistakes has "
    f"{len(mistakes)} rows: keep the rows where snaps.correct(-1) is False")
assert set(mistakes["topic"]) | set(mistakes["prediction"]) <= set(snaps.class_names), (
    "topic and prediction should be topic names (snaps.class_names[i]), not numbers")
assert (mistakes["topic"] != mistakes["prediction"]).all(), (
    "in every row the topic (the label) should differ from the prediction: is `prediction` "
    "the last epoch's answer, snaps.predictions[-1]?")
### BEGIN HIDDEN TESTS
_expected = sorted((snaps.titles[i], snaps.class_names[snaps.labels[i]],
                    snaps.class_names[snaps.predictions[-1][i]], snaps.snippets[i])
                   for i in np.flatnonzero(~snaps.correct(-1)))
assert sorted(map(tuple, mistakes.itertuples(index=False))) == _expected
### END HIDDEN TESTS

# %% [markdown] id="q-mistakes" question
# At the last epoch, are the topics completely separate, or are there zones where two
# meet? Look at the last panel of the grid of section 4, and at the explorer of section 6
# at the last epoch, coloured by `correct`: where do the mistakes sit? Pick one article
# between two clusters (or inside the wrong one) and say, from its title and snippet, why
# the network may find it ambiguous: is the model wrong, or is the article really about two
# topics? What does that say about the points that overlap in the picture?

# %% [markdown] id="a-mistakes" answer points=2
# *Example answer for the default topics (yours depend on the topics you chose):* The
# topics form separate islands, but not cleanly everywhere: a few articles sit between two
# islands or at the edge of the wrong one, and they are mostly the mistakes. Most of them
# straddle two topics or say little: on Wikipedia, an intro that a topic's search found but
# that is mostly about something else (for example a sports article full of statistics and
# prediction words, or a biography that names an artist and a scientist), or a short intro
# that is mostly names and dates, which the TF-IDF vocabulary barely covers; on BBC News,
# stories between sections, such as the business of film or music (business or
# entertainment) or a government's plans for technology (politics or tech). Their labels
# come from a search or a newsroom's filing, not from their content, so the model's answer
# is often defensible. Overlapping points are often a property of the data and its labels,
# not only a weakness of the model.

# %% [markdown] id="q-confusable" question
# Which two topics does the network confuse most often? Count the pairs in `mistakes`
# (`mistakes.value_counts(["topic", "prediction"])`) and look for clusters that touch in the
# explorer at the last epoch. Then name two topics that would fool the network into one
# overlapping cluster, and say why. (On Wikipedia you can try them: change `TOPICS`.)

# %% [markdown] id="a-confusable" answer points=2
# *Example answer for the default topics:* Machine learning, Renaissance art and Basketball
# share almost no vocabulary, so the three clusters separate and the few mistakes are single
# articles between two topics, such as a sports-analytics article (Basketball or Machine
# learning) or one on art made by computers (Renaissance art or Machine learning). On BBC
# News, expect business to be mixed most with politics and tech (stories on the economy,
# taxes or technology companies). Two topics whose articles use the same words would fool
# the network, for example *Astronomy* and *Astrophysics*, or *Machine learning* and
# *Statistics*: their TF-IDF vectors are nearly the same (stars, galaxy, telescope; data,
# model, regression), and the label only says which search found an article, so many
# articles would fit either label. The network sees nothing but those vectors, so it cannot
# pull the two apart: their clusters overlap at the last epoch and the test accuracy stays
# clearly lower than with the default topics.

# %% [markdown] id="what-the-network-adds"
# ## 8. What the network adds over TF-IDF
#
# TF-IDF alone already places articles: do we need the network to find which articles are
# alike? A simple test of a representation is a vote of neighbours: for each probe
# article, take the `k` other probe articles most similar to it and let them vote on its
# topic. If the vote is mostly right, articles of one topic lie close together. We measure
# similarity by the cosine, the dot product of two rows scaled to length 1: for TF-IDF the
# direction of a vector says which words an article uses, its length little.
#
# Write `knn_accuracy(x, y, k=5)`: `x` is an array `[n, d]` (one row per article), `y` the
# topic index of each row. Scale every row to length 1 (divide by
# `np.linalg.norm(x, axis=1, keepdims=True)`; an article with none of the vocabulary's
# words has a zero row: divide by `np.maximum(norm, 1e-12)` so it stays zero), compute the
# similarity matrix `[n, n]`, set its diagonal to `-np.inf` (`np.fill_diagonal`) so that an
# article is not its own neighbour (this is *leave-one-out*), take the `k` most similar
# rows of each article (`np.argsort(-sim, axis=1)[:, :k]`), and predict the topic most of
# them carry (`np.bincount(votes, minlength=n_classes).argmax()` with
# `n_classes = y.max() + 1`, which picks the smallest topic index on a tie; another fixed
# tie rule, such as the nearest neighbour's topic, is as valid). Return the
# fraction of articles predicted right, as a float. The cell then compares TF-IDF
# (`knn_tfidf`) with the network's embedding at the last epoch (`knn_embedding`).

# %% id="knn" exercise
def knn_accuracy(x: np.ndarray, y: np.ndarray, k: int = 5) -> float:
    """Leave-one-out accuracy of a k-nearest-neighbour vote by cosine similarity."""
    ### BEGIN SOLUTION
    x = np.asarray(x, dtype=np.float64)
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)  # an empty row stays 0
    sim = unit @ unit.T
    np.fill_diagonal(sim, -np.inf)  # an article is not its own neighbour
    near = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    n_classes = int(y.max()) + 1
    pred = np.array([np.bincount(votes, minlength=n_classes).argmax() for votes in y[near]])
    return float((pred == y).mean())
    ### END SOLUTION


knn_tfidf = knn_accuracy(data.x_probe.numpy(), snaps.labels)
knn_embedding = knn_accuracy(snaps.layer()[-1], snaps.labels)
print(f"{len(snaps.labels)} probe articles, 5 neighbours: TF-IDF {knn_tfidf:.3f}, "
      f"embedding at the last epoch {knn_embedding:.3f}")

# %% id="knn-check" test points=3
for _name, _value in [("knn_tfidf", knn_tfidf), ("knn_embedding", knn_embedding)]:
    assert isinstance(_value, float), (
        f"{_name} should be a float (return float(...)), not a {type(_value).__name__}")
    assert 0.0 <= _value <= 1.0, f"{_name} = {_value} should be a fraction between 0 and 1"
_two = knn_accuracy(np.array([[1.0, 0.0], [2.0, 0.2]]), np.array([0, 1]), k=1)
assert _two == 0.0, (
    f"two points of different topics: each one's only neighbour is the other, so the "
    f"accuracy is 0.0, but you got {_two}. Is every point left out of its own neighbours "
    f"(the diagonal of the similarity matrix set to -inf)?")
_scaled = knn_accuracy(np.array([[1.0, 0.0], [9.0, 1.0], [0.1, 1.0], [0.0, 0.1]]),
                       np.array([0, 0, 1, 1]), k=1)
assert _scaled == 1.0, (
    f"the nearest neighbour by angle has the same topic for all four points, so the accuracy "
    f"is 1.0, but you got {_scaled}. Are the rows scaled to length 1 before the dot products "
    f"(cosine similarity, not distance)?")
### BEGIN HIDDEN TESTS
# A hand-made case: 4 of 7 right with k=1.
_x = np.array([[7, 2], [8, 2], [7, 4], [7, 3], [3, 5], [1, 3], [6, 8]], dtype=float)
_y = np.array([0, 0, 1, 1, 1, 2, 2])
assert abs(knn_accuracy(_x, _y, k=1) - 4 / 7) < 1e-9, knn_accuracy(_x, _y, k=1)
# With k=2 five of the seven votes tie: the smallest topic wins 2 of 7, the nearest
# neighbour's (or the largest) topic 4 of 7. Any fixed tie rule is a valid vote.
assert any(abs(knn_accuracy(_x, _y, k=2) - _t) < 1e-9 for _t in (2 / 7, 4 / 7)), \
    knn_accuracy(_x, _y, k=2)
# Against scikit-learn's cosine neighbours (kneighbors() leaves each point out), whatever
# the tie rule: between the share right under the least and under the most lucky rule; a
# near-tie in similarity may flip one more vote.
def _sklearn_loo_bounds(x, y, k=5):
    from sklearn.neighbors import NearestNeighbors

    near = NearestNeighbors(n_neighbors=k, metric="cosine").fit(x).kneighbors(
        return_distance=False)
    low = high = 0
    for votes, label in zip(y[near], y, strict=True):
        counts = np.bincount(votes, minlength=int(y.max()) + 1)
        tied = np.flatnonzero(counts == counts.max())
        high += label in tied
        low += len(tied) == 1 and tied[0] == label
    return low / len(y), high / len(y)


_epoch0 = snaps.layer()[0]
for _x, _k, _value in [(data.x_probe.numpy(), 5, knn_tfidf),
                       (snaps.layer()[-1], 5, knn_embedding),
                       (_epoch0, 3, knn_accuracy(_epoch0, snaps.labels, k=3))]:
    _low, _high = _sklearn_loo_bounds(_x, snaps.labels, _k)
    _slack = 1 / len(snaps.labels) + 1e-9
    assert _low - _slack <= _value <= _high + _slack, (_k, _value, _low, _high)
### END HIDDEN TESTS

# %% [markdown] id="knn-per-epoch-text"
# The same vote on every epoch's embedding, beside the kit's own kNN probe and the
# network's test accuracy. `metrics.knn_accuracy` (the `knn_acc` column of
# `metrics.geometry`) also votes by cosine, but not leave-one-out: it splits the probe set
# into two halves (each with the topics in the same proportions), takes the neighbours from
# one half only, with `k=10`, and scores the other half. With half as many candidates its
# numbers differ a little from yours, but the two should follow the same curve.

# %% id="knn-per-epoch"
pd.DataFrame({
    "epoch": range(snaps.epochs + 1),
    "knn, yours (k=5)": [knn_accuracy(h, snaps.labels) for h in snaps.layer()],
    "knn_acc, labkit (k=10)": [metrics.knn_accuracy(h, snaps.labels) for h in snaps.layer()],
    "test_acc": [row["test_acc"] for row in snaps.history],
}).set_index("epoch").round(3)

# %% [markdown] id="q-knn" question
# Compare `knn_tfidf` with `knn_embedding`, and follow the vote through the epochs in the
# table. What does the network add over TF-IDF? Is the vote at epoch 0 better or worse
# than TF-IDF's, although the embedding is computed from the TF-IDF vectors, and why?

# %% [markdown] id="a-knn" answer points=3
# TF-IDF's neighbours are already mostly of the same topic (`knn_tfidf` is far above
# chance, {{chance}}), because articles of one topic share their rare words. The last
# epoch's embedding does at least as well and usually better, close to the network's test
# accuracy: training sends the words that signal one topic to the same few directions, so
# two articles on the same topic become neighbours even when they share few words, and
# words that carry no topic count for little; it does this in 64 numbers instead of one
# per vocabulary word. At epoch 0 the weights are random: the first layer mixes all words at random,
# and the noise this adds is as large as the small similarities between sparse articles,
# so the vote is at best as good as TF-IDF's and can fall towards chance. The table shows
# the gain arriving in the first epochs, together with the accuracy, and the kit's
# `knn_acc` following the same curve.

# %% [markdown] id="the-mantis-csv" optional
# ## 9. Mantis: the whole run on one map
#
# Mantis is an online workbench that draws embeddings as maps you can explore. It reads a
# CSV with one row per article: `title`, `categoric` (its topic), the snippet, the model's
# prediction, and one column `embedding_epoch_k` per epoch, from `embedding_epoch_0`
# (before training) to the last epoch (`embedding_epoch_10` with `EPOCHS = 10`), each a
# list of the 64 numbers of that epoch's embedding. Mantis computes the projection itself,
# with UMAP, from the epoch you choose, so this one file replays the whole of training.
#
# `coordinates=2` adds two more columns, `coordinate1` and `coordinate2`: a ready 2-D
# projection of the last epoch (a PCA). Mantis can show it directly, without computing a
# projection of its own: use it when Mantis' own projection is slow (a large probe set),
# or when you want Mantis to show a picture you know. To show exactly the last panel of
# the grid of section 4 (the aligned `METHOD` layout), pass that instead:
# `layout=traj[-1]`, an array [probe size, 2].

# %% id="mantis-csv"
labkit.write_mantis_csv(snaps, f"{OUT}/mantis.csv", coordinates=2)
pd.read_csv(f"{OUT}/mantis.csv").iloc[:3, :6]

# %% [markdown] id="mantis-walkthrough"
# ### In Mantis
#
# Mantis is a web application hosted at MIT CSAIL, <https://mantis.csail.mit.edu/>, the
# address MIT's course 6.390 gives for its Lab 8; MIT's course pages link to it. It asks
# you to log in: that course gives its students accounts (their own, or a class-wide one).
# Elsewhere, your course says whether it has access for you and which login to use. No
# access? Skip the steps below: the explorer of section 6 and the Embedding Projector of
# section 5 show the same run, and the question after this walk-through can be answered
# in the explorer. Uploading the CSV hands the article titles, snippets and embeddings to
# that site.
#
# 1. Download `mantis.csv` from the run folder `OUT` (on Colab, from the file browser on
#    the left) and open <https://mantis.csail.mit.edu/> in your browser; log in.
# 2. Create a new project, giving it a project name and a map name, and drag the CSV onto
#    the page. Mantis reads the column names from the header; check that `title` is taken
#    as the title and `categoric` as a categoric field.
# 3. Choose `embedding_epoch_0` as the vector column (the space Mantis projects), have
#    UMAP reduce it to 3-D, and colour the points by `categoric`. This is the untrained
#    network: expect one mixed cloud.
# 4. Move through training by choosing another `embedding_epoch_k` as the vector column:
#    `embedding_epoch_1`, `embedding_epoch_2`, ..., up to the last epoch. The points move
#    to their new places; watch when the topics break away from each other, and find the
#    articles between two clusters at the end: are they the mistakes of section 7?
# 5. For the ready projection instead, tag `coordinate1` and `coordinate2` as custom
#    coordinates that override the embedding, and choose
#    *Direct Projection (no embedding)* as the reduction model: Mantis then places the
#    points at these coordinates and computes no embedding or projection itself. This
#    shows the last epoch only.

# %% [markdown] id="q-mantis" question
# In Mantis at the last epoch (or in the explorer of section 6: shift-drag to lasso),
# select a group of neighbouring articles inside one topic's cluster. Do their titles
# share a theme narrower than the topic, a sub-topic? Try two or three groups, and say
# what the network was told about them.

# %% [markdown] id="a-mantis" answer points=2
# *(What to expect; the articles depend on your topics and run.)* Inside an island the
# neighbours are not random: expect groups such as players apart from leagues and rules
# in "Basketball", painters apart from works and places in "Renaissance art", or, on BBC
# News, football apart from tennis and athletics in sport. The network was told only the
# topic, yet articles with shared vocabulary end up near each other, so the embedding holds
# structure the labels never named.

# %% [markdown] id="hand-in"
# ## What to hand in
#
# {{hand_in}}

# %% [markdown] id="clean-up"
# ## Clean up
#
# TensorBoard (and the tunnel, if you opened one) runs in the background until this
# notebook's kernel ends (you shut it down or restart it, or close Colab's runtime). To
# stop it sooner, when you are done with the projector, remove the `#` and run the cell.

# %% id="stop-servers"
# labkit.view.stop_all(); labkit.stop_tunnels()
