"""labkit: watch a classifier learn its representation, epoch by epoch.

>>> import labkit
>>> data = labkit.load_dataset("digits")
>>> model = labkit.build_model("cnn", data.input_shape, data.n_classes)
>>> snaps = labkit.train(model, data, epochs=10)      # doctest: +SKIP
"""

from . import interrupts

with interrupts.deferred():  # the command line's first seconds: see interrupts.py
    from . import plots, store
    from ._version import __version__
    from .analysis import align, metrics, reduce, tour, workflows
    from .data import DATASETS, DataError, LabData, load_dataset
    from .data.annotator import Annotator, BudgetExceeded
    from .errors import ConfigError, DivergedError, LabkitError, LayerNotFound
    from .export.mantis import MantisTable, read_mantis_csv, write_mantis_csv
    from .export.projector import write_projector
    from .hooks import capture, embedding_layers, head_layer, layer_names, penultimate_layer
    from .models import MLP, MODELS, ConvNet, build_model, default_model
    from .paths import home, in_colab
    from .pretrained import PretrainedUnavailable, pretrained_embedding
    from .repeats import Repeats, repeat
    from .snapshots import Snapshots
    from .training.device import pick_device
    from .training.loop import train
    from .training.record import evaluate
    from .view import (
        Explorer,
        explore,
        ngrok_token,
        open_tensorboard,
        open_tunnel,
        start_tensorboard,
        stop_tunnels,
    )

__all__ = [
    "__version__",
    "Annotator",
    "BudgetExceeded",
    "Repeats",
    "repeat",
    "DATASETS",
    "Explorer",
    "ConfigError",
    "DivergedError",
    "LabkitError",
    "LayerNotFound",
    "MLP",
    "MODELS",
    "PretrainedUnavailable",
    "ConvNet",
    "DataError",
    "LabData",
    "Snapshots",
    "build_model",
    "capture",
    "default_model",
    "embedding_layers",
    "evaluate",
    "explore",
    "head_layer",
    "home",
    "in_colab",
    "layer_names",
    "load_dataset",
    "penultimate_layer",
    "pretrained_embedding",
    "pick_device",
    "train",
    "MantisTable",
    "read_mantis_csv",
    "write_mantis_csv",
    "write_projector",
    "ngrok_token",
    "open_tensorboard",
    "open_tunnel",
    "start_tensorboard",
    "stop_tunnels",
    "align",
    "metrics",
    "plots",
    "store",
    "reduce",
    "tour",
    "workflows",
]
