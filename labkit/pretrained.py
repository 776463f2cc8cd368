"""Embeddings from a network trained on ImageNet, to set beside the lab network's.

A pretrained backbone's penultimate layer is the embedding most practitioners start from.
``pretrained_embedding(images)`` runs images through a torchvision model with its ImageNet
weights and returns that layer, one row per image, for the same k-NN and neighbour measures
the labs apply to their own network. The weights are downloaded once by torchvision (about
45 MB for ResNet-18, kept in ``$TORCH_HOME/hub/checkpoints``); where there is no internet
and no copy, :class:`PretrainedUnavailable` says so and the lab's optional cell moves on.

The layer is read with torchvision's ``create_feature_extractor`` (activations by node
name, as the kit's hooks record them by module name): for the ResNets, ``flatten``, the
pooled features the classifier ``fc`` reads.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from .errors import LabkitError

__all__ = ["PretrainedUnavailable", "pretrained_embedding"]


class PretrainedUnavailable(LabkitError, OSError):
    """The pretrained weights could not be had here (no internet and no copy on disk)."""


def _weights(name: str):
    import torchvision

    try:
        return torchvision.models.get_model_weights(name).DEFAULT
    except (KeyError, ValueError):
        known = ", ".join(sorted(torchvision.models.list_models(torchvision.models)))
        raise PretrainedUnavailable(
            f"torchvision has no model {name!r}; its image classifiers: {known}"
        ) from None


def pretrained_embedding(
    images: torch.Tensor,
    *,
    name: str = "resnet18",
    layer: str = "flatten",
    batch_size: int = 64,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """The ``layer`` of torchvision's ``name`` with its ImageNet weights, for ``images``.

    ``images`` is ``[n, C, H, W]`` with values in [0, 1], as ``load_dataset(...,
    normalise=False)`` gives them; one channel is repeated to three, and each image is
    resized to the weights' input size and standardised with ImageNet's statistics, as the
    network was trained. Returns a float32 array ``[n, width]`` (512 for ResNet-18).
    Raises :class:`PretrainedUnavailable` when the weights cannot be downloaded or found.
    """
    from torchvision.models.feature_extraction import create_feature_extractor

    images = torch.as_tensor(images, dtype=torch.float32)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(
            f"images should be [n, 1 or 3 channels, height, width]; got {tuple(images.shape)}"
        )
    weights = _weights(name)
    import torchvision

    try:
        model = torchvision.models.get_model(name, weights=weights)
    except (OSError, RuntimeError) as err:  # urllib's URLError is an OSError
        raise PretrainedUnavailable(
            f"the ImageNet weights of {name} could not be downloaded ({err}); this needs "
            f"internet once (Colab has it), or the file {weights.url.rsplit('/', 1)[-1]} in "
            f"{torch.hub.get_dir()}/checkpoints"
        ) from None
    device = torch.device(device) if device is not None else images.device
    extractor = create_feature_extractor(model, return_nodes={layer: "embedding"})
    extractor.eval().to(device)
    preset = weights.transforms()
    size = preset.crop_size[0]
    mean = torch.tensor(preset.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(preset.std, device=device).view(1, 3, 1, 1)
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].to(device)
            x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
            out.append(extractor((x - mean) / std)["embedding"].flatten(1).float().cpu())
    return torch.cat(out).numpy()
