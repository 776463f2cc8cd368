"""The pretrained backbone's embedding: real torchvision ResNet-18 code, with stand-in weights
on disk where torchvision keeps its downloads (ImageNet's cannot be fetched here)."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import torch
import torchvision

import labkit


@pytest.fixture
def standin_weights(tmp_path, monkeypatch):
    """A randomly initialised ResNet-18 saved under the file name of the ImageNet weights, in
    a TORCH_HOME of the test's own: torchvision finds it there and downloads nothing."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    weights = torchvision.models.ResNet18_Weights.DEFAULT
    torch.manual_seed(0)
    net = torchvision.models.resnet18()
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(net.state_dict(), folder / weights.url.rsplit("/", 1)[-1])
    return net.eval(), weights


def test_the_embedding_is_the_pooled_features_the_classifier_reads(standin_weights):
    net, weights = standin_weights
    images = labkit.load_dataset("digits", normalise=False).x_probe[:12]  # [12, 1, 8, 8]
    emb = labkit.pretrained_embedding(images, batch_size=5)  # three batches
    assert emb.shape == (12, 512) and emb.dtype == np.float32
    # By hand: grey to RGB, resized to 224, ImageNet's statistics, everything but fc.
    x = torch.nn.functional.interpolate(
        images.expand(-1, 3, -1, -1), size=(224, 224), mode="bilinear", align_corners=False
    )
    preset = weights.transforms()
    x = (x - torch.tensor(preset.mean).view(1, 3, 1, 1)) / torch.tensor(preset.std).view(1, 3, 1, 1)
    net.fc = torch.nn.Identity()
    with torch.no_grad():
        expected = net(x).numpy()
    np.testing.assert_allclose(emb, expected, rtol=1e-4, atol=1e-5)
    # Colour images go through as they are.
    rgb = torch.rand(3, 3, 32, 32)
    assert labkit.pretrained_embedding(rgb).shape == (3, 512)


def test_without_internet_or_a_copy_it_says_what_is_needed(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(url, *args, **kwargs):  # what urllib raises where the name does not resolve
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(labkit.PretrainedUnavailable) as info:
        labkit.pretrained_embedding(torch.rand(2, 1, 8, 8))
    message = str(info.value)
    assert "could not be downloaded" in message and "Colab has it" in message
    assert f"resnet18-f37072fd.pth in {tmp_path}/hub/checkpoints" in message
    assert isinstance(info.value, OSError)  # an except OSError in a user's code still works


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"\[n, 1 or 3 channels, height, width\]; got \(5, 64\)"):
        labkit.pretrained_embedding(torch.rand(5, 64))
    with pytest.raises(labkit.PretrainedUnavailable, match="torchvision has no model 'resnet7'"):
        labkit.pretrained_embedding(torch.rand(2, 1, 8, 8), name="resnet7")


@pytest.mark.slow
def test_lab6s_backbone_cell_sets_four_embeddings_side_by_side(standin_weights, tmp_path):
    """Lab 6's optional cell, as the notebook holds it, on a small digits run: with the
    weights found it shows the table, its numbers the kit's measures of each embedding."""
    import sys
    from pathlib import Path

    import pandas as pd

    from labkit import metrics

    from .test_exercises import solution

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import authoring

    cells = authoring.read_source("06_working_with_embeddings").cells
    source = next(c.source for c in cells if c.metadata["id"] == "backbone")
    data = labkit.load_dataset("digits", probe_size=60, seed=0, label_noise=0.1)
    model = labkit.build_model("cnn", data.input_shape, data.n_classes, seed=0)
    snaps = labkit.train(model, data, epochs=1, seed=0, progress=False)
    agreement = solution("06_working_with_embeddings", "agreement")["neighbour_agreement"]
    shown = []
    namespace = {
        **dict(np=np, pd=pd, labkit=labkit, metrics=metrics, snaps=snaps, display=shown.append),
        **dict(DATASET="digits", DATA_DIR=str(tmp_path), PROBE_SIZE=60, SEED=0, CLASSES=None),
        "neighbour_agreement": agreement,
    }
    exec(compile(source, "06:backbone", "exec"), namespace)
    (table,) = shown
    backbone, truth = namespace["backbone"], namespace["truth"]
    assert backbone.shape == (60, 512)
    assert list(table.index) == [
        "pixels",
        "lab network, epoch 0",
        "lab network, last epoch",
        "ResNet-18, ImageNet weights",
    ]
    assert table["width"].tolist() == [64, 64, 64, 512]
    row = table.loc["ResNet-18, ImageNet weights"]
    assert row["k-NN accuracy (true labels)"] == round(metrics.knn_accuracy(backbone, truth), 3)
    n = int(snaps.flipped.sum())
    ranked = np.argsort(agreement(backbone, snaps.labels), kind="stable")
    assert row[f"label-error precision at {n}"] == round(float(snaps.flipped[ranked[:n]].mean()), 3)
