"""Training: the loop that records the probe at every epoch (:mod:`.loop`), the device and the
precision policy it runs under (:mod:`.device`), the order of the training batches
(:mod:`.batches`), the evaluation and the probe's recorder (:mod:`.record`), and the finished
runs kept by what went into them (:mod:`.runcache`). Nothing in :mod:`labkit.analysis`
imports from here: analysis reads what training recorded, a :class:`labkit.Snapshots`.
"""
