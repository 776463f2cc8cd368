"""Analysis: what students measure on the recorded embeddings, a :class:`labkit.Snapshots`
or plain arrays. Projections (:mod:`.reduce`: PCA, t-SNE, UMAP), alignment across epochs and
layers (:mod:`.align`), the Grand Tour (:mod:`.tour`), measures (:mod:`.metrics`: neural
collapse, CKA, probes) and the workflows built on them (:mod:`.workflows`: disagreement,
search, label errors, failure clusters). It never imports :mod:`labkit.training`; the
package exposes each module at its top (``labkit.reduce.project``).
"""
