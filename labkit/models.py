"""Small classifiers whose layers have stable, readable names.

Every kit model lists its representation layers in ``embedding_layers`` (shallow to deep);
the last one is the penultimate layer, the input of the linear ``head``. Names are what you
pass to :func:`labkit.hooks.capture` and what the exporters show:

>>> model = build_model("deep-mlp", input_shape=(64,), n_classes=10)
>>> model.embedding_layers
['hidden1', 'hidden2', 'hidden3', 'hidden4', 'hidden5']
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

from .errors import ConfigError

__all__ = ["MODELS", "ConvNet", "MLP", "build_model", "default_model"]


def _conv_block(c_in: int, c_out: int, convs: int = 1) -> nn.Sequential:
    """conv -> 2x2 max-pool -> BN -> ReLU [-> conv -> BN -> ReLU]: halves the image.

    Pooling right after the convolution, before batch norm and ReLU (as airbench does),
    computes what conv-BN-ReLU-pool does wherever BN's scale is positive (max-pooling
    commutes with increasing per-channel maps), while BN and ReLU work on a quarter of the
    pixels: 1.75x faster per MNIST training step on a CPU, where BN's backward pass
    dominated.
    """
    parts: OrderedDict[str, nn.Module] = OrderedDict(
        conv=nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
        pool=nn.MaxPool2d(2),
        bn=nn.BatchNorm2d(c_out),
        relu=nn.ReLU(),
    )
    for i in range(2, convs + 1):
        parts[f"conv{i}"] = nn.Conv2d(c_out, c_out, kernel_size=3, padding=1, bias=False)
        parts[f"bn{i}"] = nn.BatchNorm2d(c_out)
        parts[f"relu{i}"] = nn.ReLU()
    return nn.Sequential(parts)


class ConvNet(nn.Module):
    """A VGG-style CNN: ``block1 .. blockK`` (conv-pool-BN-ReLU, see :func:`_conv_block`),
    ``embed`` (linear-ReLU), ``head``.

    Sized for 1x28x28 (MNIST, Fashion-MNIST), 3x32x32 (CIFAR-10) and 1x8x8 (digits). With
    two blocks of 24 and 48 channels on MNIST it costs a fifth of the PyTorch-example CNN's
    multiply-adds (2.5 M vs 12 M per image) because it pools after every convolution.
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        n_classes: int,
        channels: tuple[int, ...] = (32, 64),
        embed_dim: int = 128,
        dropout: float = 0.25,
        kind: str = "cnn",
        convs_per_block: int = 1,
    ):
        super().__init__()
        self.kind = kind  # the name in MODELS, recorded with the snapshots
        c, h, w = input_shape
        if min(h, w) < 2 ** len(channels):
            raise ConfigError(f"a {h}x{w} image is too small for {len(channels)} pooling blocks")
        self.embedding_layers: list[str] = []
        for i, width in enumerate(channels, start=1):
            self.add_module(f"block{i}", _conv_block(c, width, convs_per_block))
            self.embedding_layers.append(f"block{i}")
            c, h, w = width, h // 2, w // 2
        self.flatten = nn.Flatten()
        self.embed = nn.Sequential(
            OrderedDict(linear=nn.Linear(c * h * w, embed_dim), relu=nn.ReLU())
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(embed_dim, n_classes)
        self.embedding_layers.append("embed")
        self.n_blocks = len(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, self.n_blocks + 1):
            x = getattr(self, f"block{i}")(x)
        return self.head(self.dropout(self.embed(self.flatten(x))))


class MLP(nn.Module):
    """``hidden1 .. hiddenN`` (linear-[BN]-ReLU) and a linear ``head``; inputs are flattened.

    ``MLP(64, 10, hidden=(128,) * 5)`` is the deep MLP of the layer-by-layer lab.
    """

    def __init__(
        self,
        in_features: int,
        n_classes: int,
        hidden: tuple[int, ...] = (256, 64),
        batch_norm: bool = True,
        dropout: float = 0.0,
        kind: str = "mlp",
    ):
        super().__init__()
        self.kind = kind  # the name in MODELS, recorded with the snapshots
        self.flatten = nn.Flatten()
        self.embedding_layers: list[str] = []
        d = in_features
        for i, width in enumerate(hidden, start=1):
            parts: OrderedDict[str, nn.Module] = OrderedDict(
                linear=nn.Linear(d, width, bias=not batch_norm)
            )
            if batch_norm:
                parts["bn"] = nn.BatchNorm1d(width)
            parts["relu"] = nn.ReLU()
            self.add_module(f"hidden{i}", nn.Sequential(parts))
            self.embedding_layers.append(f"hidden{i}")
            d = width
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(d, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(x)
        for name in self.embedding_layers:
            x = getattr(self, name)(x)
        return self.head(self.dropout(x))


def _cnn(input_shape, n_classes, **kw) -> nn.Module:
    if len(input_shape) != 3:
        raise ConfigError(
            f"'cnn' needs image input [C, H, W], got shape {tuple(input_shape)}; "
            f"use 'mlp' for feature vectors"
        )
    c, h, _w = input_shape
    if h <= 8:  # digits: two blocks take 8x8 down to 2x2
        preset = {"channels": (32, 64), "embed_dim": 64}
    elif c == 3:
        # CIFAR-10: three blocks of two convolutions each, 32 -> 4 pixels; airbench's block
        # (Jordan 2024: 93% in 11 epochs at widths 64/128/128) at a third of its
        # multiply-adds (18 M per image), so that 10 epochs fit in 3 minutes on 2 CPU cores.
        preset = {"channels": (32, 64, 128), "embed_dim": 256, "convs_per_block": 2}
    else:  # MNIST-like; 24/48 channels: a third faster than 32/64 on a CPU, ample for MNIST
        preset = {"channels": (24, 48), "embed_dim": 128}
    return ConvNet(tuple(input_shape), n_classes, **{**preset, **kw})


def _mlp(input_shape, n_classes, **kw) -> nn.Module:
    return MLP(math.prod(input_shape), n_classes, **kw)


def _deep_mlp(input_shape, n_classes, depth: int = 5, width: int = 128, **kw) -> nn.Module:
    return MLP(math.prod(input_shape), n_classes, hidden=(width,) * depth, kind="deep-mlp", **kw)


MODELS = {"cnn": _cnn, "mlp": _mlp, "deep-mlp": _deep_mlp}

_DEFAULT_MODEL = {
    "digits": "cnn",
    "mnist": "cnn",
    "fashion-mnist": "cnn",
    "cifar10": "cnn",
    "blobs": "mlp",
    "wikipedia": "mlp",
    "bbc": "mlp",
}


def default_model(dataset: str) -> str:
    """The model a data set uses when none is named (``cnn`` for images, ``mlp`` otherwise)."""
    return _DEFAULT_MODEL.get(dataset, "mlp")


def build_model(
    name: str, input_shape: tuple[int, ...], n_classes: int, seed: int = 0, **options
) -> nn.Module:
    """Build a kit model with weights drawn from ``seed`` (the global RNG is left untouched).

    ``name`` is one of ``MODELS``: ``cnn`` (sizes itself to the image), ``mlp``, ``deep-mlp``
    (``depth=5``, ``width=128``). ``options`` go to the model class.
    """
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MODELS[name](tuple(input_shape), n_classes, **options)
