"""The models a job can train (a small CNN from scratch, or a torchvision backbone with a new head) and their export.

Backbones start from ImageNet weights when they are in the local torch hub
cache (``torch.hub.get_dir()/checkpoints``) or can be downloaded within a few
seconds; otherwise they train from scratch and say so in a note.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NET_TIMEOUT_S = 5.0


@dataclass
class Built:
    model: nn.Module
    head: list[nn.Parameter]  # new (randomly initialised) parameters: the classifier head
    pretrained: bool  # ImageNet weights were loaded: normalise with ImageNet statistics


class SmallCNN(nn.Module):
    """A small VGG-style CNN: conv-bn-relu blocks at 32, 64 and 2 x 128 channels, then a 256-unit hidden layer.

    conv32, pool, conv64, pool, conv128, conv128, adaptive max-pool to 3 x 3
    (so any image size works with the same head), dropout, fc256-bn-relu,
    dropout, fc. Convolutions at full resolution dominate CPU time, so there
    is one per block there and the extra depth sits at the lowest resolution:
    the classic (two convs each at 32 and 64 channels) costs twice the CPU
    time per image for no better accuracy on 5,000 Fashion-MNIST images.
    On 20,000 of them (8 epochs, 10,000 test images): 0.912 accuracy, where
    the same net without the second conv128 and the hidden layer gets 0.901.
    """

    def __init__(self, num_classes: int, width: int = 32, channels: int = 3, hidden: int = 256):
        super().__init__()

        def block(i: int, o: int) -> list[nn.Module]:
            return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]

        self.features = nn.Sequential(
            *block(channels, width), nn.MaxPool2d(2),
            *block(width, 2 * width), nn.MaxPool2d(2),
            *block(2 * width, 4 * width), *block(4 * width, 4 * width), nn.AdaptiveMaxPool2d(3),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(0.3),
            nn.Linear(4 * width * 9, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
            nn.Dropout(0.3), nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class Exported(nn.Module):
    """What model.pt holds: float RGB images in [0, 1], shape (N, 3, S, S) -> logits (N, K).

    Normalisation is inside, so a user of model.pt only resizes and scales to [0, 1].
    """

    def __init__(self, model: nn.Module, mean: list[float], std: list[float], arch: str = "smallcnn"):
        super().__init__()
        self.model = model
        self.arch = arch  # a plain string: read while tracing, not stored in the TorchScript file
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate layer (what the classifier head reads): the image's embedding."""
        return penultimate(self.model, self.arch, (x - self.mean) / self.std)


BACKBONES = ("resnet18", "mobilenet_v3", "efficientnet_b0")  # mobilenet_v3 is MobileNetV3-Large


def build(name: str, num_classes: int, *, imagenet: dict | None = None) -> Built:
    """A fresh model for `num_classes`; `name` is one of spec.MODELS (checked by the caller).

    `imagenet` is the backbone's ImageNet state dict (from `imagenet_weights`), or None to start from scratch.
    """
    if name == "smallcnn":
        model = SmallCNN(num_classes)
        return Built(model, list(model.parameters()), pretrained=False)
    model = _factory(name)[0](weights=None)
    if imagenet is not None:
        model.load_state_dict(imagenet)
    if name == "resnet18":
        model.fc = nn.Linear(model.fc.in_features, num_classes)
        head = model.fc
    else:  # mobilenet_v3_large and efficientnet_b0 end in classifier[-1]
        model.classifier[-1] = nn.Linear(model.classifier[-1].in_features, num_classes)
        head = model.classifier[-1]
    return Built(model, list(head.parameters()), pretrained=imagenet is not None)


def head(model: nn.Module, name: str) -> nn.Linear:
    """The classifier's last layer: logits = head(penultimate(model, name, x))."""
    if name == "smallcnn":
        return model.classifier[-1]
    return model.fc if name == "resnet18" else model.classifier[-1]


def penultimate(model: nn.Module, name: str, x: torch.Tensor) -> torch.Tensor:
    """The input of the classifier head, (N, D): the model's embedding of normalised images `x`.

    Spelled out per architecture with the model's own layers (no copy, no hook), so a traced
    model.pt gets it as a second method over the same weights, and a prediction pass gets logits
    and embeddings from one forward (`head(...)` of this is exactly `model(x)`).
    """
    if name == "smallcnn":
        return model.classifier[:-1](model.features(x))
    if name == "resnet18":
        m = model
        x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        x = m.layer4(m.layer3(m.layer2(m.layer1(x))))
        return torch.flatten(m.avgpool(x), 1)
    # mobilenet_v3_large and efficientnet_b0: features, avgpool, flatten, classifier
    return model.classifier[:-1](torch.flatten(model.avgpool(model.features(x)), 1))


def imagenet_weights(name: str) -> tuple[dict | None, str]:
    """(state dict, "") for a backbone's ImageNet weights, or (None, a note saying why not)."""
    state, why = _imagenet_state(_factory(name)[1].DEFAULT)
    if state is None:
        return None, f"ImageNet weights for {name} are not available here ({why}); trained from scratch"
    return state, ""


def _factory(name: str):
    from torchvision import models

    return {
        "resnet18": (models.resnet18, models.ResNet18_Weights),
        "mobilenet_v3": (models.mobilenet_v3_large, models.MobileNet_V3_Large_Weights),
        "efficientnet_b0": (models.efficientnet_b0, models.EfficientNet_B0_Weights),
    }[name]


def export(model: nn.Module, workdir: Path, *, name: str, classes: list[str], size: int, mean: list[float],
           std: list[float], thresholds: list[float] | None = None) -> Path:
    """workdir/model.pt: TorchScript (traced on CPU) with normalisation inside; model.json describes its input.

    Two methods over one set of weights: forward (logits) and embed (the penultimate layer), so a predict job
    writes embeddings for new images in the same space as the train job's."""
    exported = Exported(copy.deepcopy(model).float().cpu().eval(), mean, std, name).eval()
    path, tmp = workdir / "model.pt", workdir / "model.pt.tmp"
    example = torch.rand(2, 3, size, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.export, but loads everywhere
        torch.jit.trace_module(exported, {"forward": example, "embed": example}).save(str(tmp))
    os.replace(tmp, path)
    info = {
        "format": "TorchScript (torch.jit.load)",
        "model": name,
        "classes": classes,
        "image_size": size,
        "input": f"float32 RGB in [0, 1], shape (N, 3, {size}, {size}): EXIF-rotated and resized to "
                 f"{size}x{size} ignoring aspect ratio (Pillow bilinear)",
        "output": ("logits (N, classes); a sigmoid gives each class's probability, and a class is in the image's "
                   "set when it reaches its threshold" if thresholds is not None else
                   "logits (N, classes); softmax gives probabilities"),
        "embed": "model.embed(x): the penultimate layer (N, D), the embedding the similar-image search uses",
        "mean": mean,
        "std": std,
        "normalisation": "(x - mean) / std is applied inside the model",
        "torch": torch.__version__,
    }
    if thresholds is not None:
        info.update(multi_label=True, thresholds=thresholds)
    (workdir / "model.json.tmp").write_text(json.dumps(info, indent=2))
    os.replace(workdir / "model.json.tmp", workdir / "model.json")
    return path


def hub_file(name: str) -> Path:
    """Where torchvision keeps a backbone's ImageNet weights once downloaded: torch.hub's checkpoints folder
    ($TORCH_HOME/hub, default ~/.cache/torch/hub), under the file name of the weights enum's URL."""
    return _hub_file(_factory(name)[1].DEFAULT)


def _hub_file(weights) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def _imagenet_state(weights) -> tuple[dict | None, str]:
    """The weights' state dict from the hub cache, or downloaded with short timeouts; else (None, why)."""
    cached = str(_hub_file(weights))
    filename = os.path.basename(cached)
    if not os.path.exists(cached):
        host = urlparse(weights.url).hostname
        if not _reachable(host, 443):
            return None, f"{filename} is not in {os.path.dirname(cached)} and {host} cannot be reached"
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(NET_TIMEOUT_S)  # a stalled download fails instead of hanging the job
    try:
        return weights.get_state_dict(progress=False, check_hash=True), ""
    except Exception as exc:  # noqa: BLE001 - any failure means: train from scratch
        return None, f"{filename} could not be loaded: {type(exc).__name__}: {exc}"
    finally:
        socket.setdefaulttimeout(previous)


def _reachable(host: str | None, port: int) -> bool:
    """Whether a TCP connection opens within NET_TIMEOUT_S (DNS included: it runs in a thread we stop waiting for)."""
    if not host:
        return False
    ok = threading.Event()

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=NET_TIMEOUT_S).close()
            ok.set()
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(NET_TIMEOUT_S + 1)
    return ok.is_set()
