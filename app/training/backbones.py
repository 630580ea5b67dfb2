"""Pretrained backbones as embedders: which weights file, loaded how, and what a wrong one is told.

An embed job (app.training.embed) and a search in an embed job's space
(app.training.search) both build the backbone here. Its weights come from a
file and only from a file: the one a job or LOUPE_EMBED_WEIGHTS names, else
the one torchvision keeps in torch.hub's cache after a download
(nets.hub_file). Nothing is downloaded: torchvision builds the net with
weights=None and the state dict is read with torch.load(weights_only=True),
which unpickles tensors and plain containers only, never code.

The classifier head is dropped before loading: the embedding is the layer
before it, so a checkpoint fine-tuned to any number of classes works too.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from app.errors import TrainingError
from app.training import nets

WRAPPERS = ("state_dict", "model", "model_state_dict")  # keys checkpoints often put the state dict under


def weights_file(name: str, explicit: str | Path | None) -> Path:
    """The weights file to load for backbone `name`: `explicit` (a job's or the setting's), else the hub cache's.

    Raises TrainingError, in one sentence, when there is none.
    """
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise TrainingError(f"the embedding weights file {path} does not exist (LOUPE_EMBED_WEIGHTS or the "
                                f"job's weights names it)")
        return path
    cached = nets.hub_file(name)
    if cached.is_file():
        return cached
    raise TrainingError(f"no pretrained weights for {name}: put them in torchvision's cache ({cached}) or point "
                        f"LOUPE_EMBED_WEIGHTS at a .pth file; similar images use the latest training job's "
                        f"embeddings meanwhile")


def embedder(name: str, path: Path) -> nets.Exported:
    """Backbone `name` with the weights in `path`, as nets.Exported: `.embed(x)` maps float RGB in [0, 1]
    (N, 3, S, S) to the penultimate layer (N, D), ImageNet normalisation inside. CPU, eval mode."""
    if name not in nets.BACKBONES:
        raise TrainingError(f"backbone must be one of {', '.join(nets.BACKBONES)}, not {name!r}")
    model = nets._factory(name)[0](weights=None)  # noqa: SLF001 - the one table of torchvision constructors
    load_into(model, name, read_state(path))
    return nets.Exported(model.eval(), list(nets.IMAGENET_MEAN), list(nets.IMAGENET_STD), name).eval()


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """The state dict in `path`: tensors only (weights_only), unwrapped from a checkpoint dict, without the
    "module." prefix DataParallel adds."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - not a torch file, a pickled model, a truncated download
        raise TrainingError(f"{path.name} is not a state_dict torch.load can read with weights_only=True "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    for key in WRAPPERS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TrainingError(f"{path.name} holds no state_dict (a mapping of parameter names to tensors)")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_into(model: nn.Module, name: str, state: dict[str, torch.Tensor]) -> None:
    """Load `state` into `model` (backbone `name`), head excluded; a file of another architecture is refused
    in one sentence that names the first tensor that does not fit."""
    head = _head_prefix(model, name)
    state = {k: v for k, v in state.items() if not k.startswith(head)}
    want = {k: v for k, v in model.state_dict().items() if not k.startswith(head)}
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    wrong = [k for k in want if k in state and tuple(state[k].shape) != tuple(want[k].shape)]
    if missing or unexpected or wrong:
        if wrong:
            k = wrong[0]
            example = f"'{k}' is {tuple(state[k].shape)} where {name} has {tuple(want[k].shape)}"
        elif missing:
            example = f"it lacks '{missing[0]}'"
        else:
            example = f"it has '{unexpected[0]}', which {name} does not"
        bad = len(set(missing) | set(unexpected) | set(wrong))
        raise TrainingError(f"the weights file is not a {name} state_dict: {bad} of its tensors do not fit "
                            f"(e.g. {example})")
    model.load_state_dict(state, strict=False)  # only the head's keys are left out, on purpose


def _head_prefix(model: nn.Module, name: str) -> str:
    """The state-dict prefix of the classifier head ("fc." for resnet18)."""
    head = nets.head(model, name)
    return next(f"{n}." for n, m in model.named_modules() if m is head)
