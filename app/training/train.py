"""Train on a snapshot: k-fold out-of-sample predictions, then a final model, exported as TorchScript.

Stages, in order (each one a fresh model):

- ``fold k/K`` for every fold: trains on every image outside fold k (train,
  val and test splits alike) for `config.epochs` epochs and predicts fold k.
  So every image gets probabilities from a model that never saw it. There is
  no early stopping here: the one-cycle schedule anneals the learning rate to
  almost nothing, so the last epoch is as good as any, and every image outside
  the fold is worth more as training data than as a stopping signal (one
  fifth more data is worth about a point of accuracy on small snapshots).
  The last epoch reports its loss and accuracy on fold k, which no decision uses.
- ``final``: trains on split "train", early-stops on split "val", is
  evaluated on val (and test when there is one), predicts the held-out
  source's images and the unlabelled images, and is exported to model.pt.

Images of `config.holdout_source` take part in no training at all; their
out-of-sample probabilities come from the final model.

Resuming: workdir/run.json fingerprints the inputs. A stage checkpoints at
every epoch end (ckpt-<stage>.pt: model, optimiser, scheduler, scaler, best
weights, early-stopping state); a finished fold leaves oof-fold<k>.npz and
drops its checkpoint. Calling `run` again on the same workdir with the same
inputs reuses finished folds and continues a stage from its last finished
epoch; different inputs start over. Epoch k's shuffling and augmentation are
seeded by (seed, stage, epoch), so a resumed stage sees the batches it would
have seen.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from app.embeddings import files as embedding_files
from app.errors import Cancelled, TrainingError
from app.training import data, multilabel, nets
from app.training import device as devices
from app.training.evaluate import evaluate
from app.training.spec import MODELS, Hooks, Item, Result, TrainConfig

DECODE_SHARE = 0.05  # of progress
FINISH_SHARE = 0.02
CHECK_EVERY_S = 1.0  # how often to ask hooks.cancelled() and report progress inside an epoch
BACKBONE_LR_FACTOR = 0.1  # pretrained layers learn at a tenth of the head's rate
MIN_DELTA = 1e-4  # validation loss must improve by this much to count
WORKDIR_FORMAT = 2  # bump when checkpoints change shape: older workdirs then start over
CHANNELS_LAST = ("cpu", "cuda")  # oneDNN and cuDNN convolutions are faster on NHWC (1.6x on CPU here)


@dataclass
class Stage:
    key: str  # file-name part: fold1, fold2, ..., final
    name: str  # for people and hooks.epoch: "fold 1/5", "final"
    index: int  # seeds the stage
    train: np.ndarray  # indices into the decoded images
    val: np.ndarray  # reported on; and early-stopped on when `early_stop`
    predict: np.ndarray
    early_stop: bool
    start: float  # progress fraction at the stage's start and end
    end: float = 0.0


def run(
    items: list[Item],
    classes: list[str],
    config: TrainConfig,
    hooks: Hooks,
    workdir: Path,
    unlabelled: Sequence[tuple[int, str]] = (),
) -> Result:
    """Out-of-sample probabilities for every item, a final model, its metrics and suggestions.

    Raises TrainingError (a sentence for the user) for inputs that cannot be
    trained on, and Cancelled when hooks.cancelled() turns true.
    """
    folds = _validate(items, classes, config)
    device = devices.choose(config.device)
    devices.setup(device)
    job = _Run(list(items), list(classes), config, hooks, Path(workdir), list(unlabelled), folds, device)
    try:
        return job.run()
    except (Cancelled, TrainingError):
        raise
    except Exception as exc:
        if devices.is_out_of_memory(exc):
            devices.free_cache(device)
            raise TrainingError(devices.OUT_OF_MEMORY) from None
        raise
    finally:
        job.images = None  # let go of the memory map before its file goes
        (Path(workdir) / data.SPILL_NAME).unlink(missing_ok=True)


def _validate(items: list[Item], classes: list[str], config: TrainConfig) -> int:
    """The number of folds; TrainingError for whatever makes the job impossible."""
    if config.model not in MODELS:
        raise TrainingError(f"unknown model '{config.model}'; choose one of {', '.join(MODELS)}")
    if len(classes) < 2:
        raise TrainingError(f"training needs at least 2 classes; this snapshot has {len(classes)}")
    for name, low in (("epochs", 1), ("batch_size", 2), ("image_size", 16)):
        if getattr(config, name) < low:
            raise TrainingError(f"{name} must be at least {low}, not {getattr(config, name)}")
    if not config.lr > 0 or config.patience < 1:
        raise TrainingError("lr must be positive and patience at least 1")
    if not items:
        raise TrainingError("the snapshot has no images")
    multi = items[0].classes is not None
    if any((it.classes is not None) != multi for it in items):
        raise TrainingError("the snapshot mixes single labels and sets of classes")
    bad = next((it for it in items if it.fold < 0 or (
        any(not 0 <= c < len(classes) for c in it.classes) if multi else not 0 <= it.label < len(classes))), None)
    if bad is not None:
        raise TrainingError(f"image {bad.image_id} has label {bad.classes if multi else bad.label} and fold "
                            f"{bad.fold}, outside this snapshot")
    folds = max(it.fold for it in items) + 1
    if multi:  # each class must be shown to every fold's model: as many images carrying it as folds
        counts = np.bincount([c for it in items for c in it.classes], minlength=len(classes))
    else:
        counts = np.bincount([it.label for it in items], minlength=len(classes))
    for name, n in zip(classes, counts.tolist()):
        if n < folds:
            raise TrainingError(f"class '{name}' has {n} images, fewer than the {folds} folds")
    held = config.holdout_source
    if held is not None and not any(it.source == held for it in items):
        raise TrainingError(f"there are no images from source '{held}' to hold out")
    if not any(it.split == "train" and it.source != held for it in items):
        raise TrainingError("the train split is empty" + (f" once source '{held}' is held out" if held else ""))
    missing = next((it for it in items if not os.path.isfile(it.path)), None)
    if missing is not None:
        raise TrainingError(f"image {missing.image_id} is missing: no file at {missing.path}")
    return folds


def _fingerprint(items: list[Item], classes: list[str], config: TrainConfig) -> str:
    """Same inputs, same fingerprint: what a resumed run must match (the device may differ)."""
    rows = sorted((it.image_id, it.label, it.split, it.fold, it.source, it.classes) for it in items)
    settings = {k: v for k, v in asdict(config).items() if k != "device"}
    text = json.dumps([WORKDIR_FORMAT, rows, classes, settings], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class _Run:
    def __init__(self, items, classes, config, hooks, workdir, unlabelled, folds, device):
        self.items, self.classes, self.config, self.hooks = items, classes, config, hooks
        self.workdir, self.unlabelled, self.folds, self.device = workdir, unlabelled, folds, device
        self.notes: list[str] = []
        self.threads = devices.Threads(device)
        self._logged_threads = torch.get_num_threads()
        self.timings: dict[str, float] = {}
        self.labels = torch.tensor([it.label for it in items], dtype=torch.int64)
        # Multi-label: one sigmoid per class against a 0/1 target row (binary cross-entropy), and per-class
        # thresholds chosen on val once the final model is trained (app.training.multilabel).
        self.multi = items[0].classes is not None
        self.targets = (torch.from_numpy(multilabel.as_targets([it.classes for it in items], len(classes)))
                        if self.multi else None)
        self.thresholds: np.ndarray | None = None
        self._last_check = 0.0
        self._norm: tuple[torch.Tensor, torch.Tensor] | None = None

    # -- the whole job -------------------------------------------------------------------------

    def run(self) -> Result:
        t0 = time.perf_counter()
        self._open_workdir()
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else self.device.type
        self.hooks.log(f"training on {name} ({torch.get_num_threads()} CPU threads), {len(self.items)} images, "
                       f"{len(self.classes)} classes, {self.folds} folds, model {self.config.model}")
        self._decode()
        self.imagenet = None
        if self.config.model in nets.BACKBONES and self.config.pretrained:
            self.imagenet, note = nets.imagenet_weights(self.config.model)  # once: a failed download is slow
            if note:
                self.notes.append(note)
                self.hooks.log(note)
        stages = self._stages()
        oos: dict[int, np.ndarray] = {}
        for stage in stages[:-1]:
            oos.update(self._fold(stage))
        final = stages[-1]
        model = self._fit(final)
        result = self._finish(model, final, oos)
        self.timings["total"] = time.perf_counter() - t0
        self.hooks.progress(1.0, "done")
        return result

    def _open_workdir(self) -> None:
        """Keep what an earlier run with the same inputs left; otherwise clear it."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        marker = self.workdir / "run.json"
        fingerprint = _fingerprint(self.items, self.classes, self.config)
        try:
            same = json.loads(marker.read_text()).get("fingerprint") == fingerprint
        except (OSError, ValueError):
            same = False
        if not same:
            for pattern in ("ckpt-*.pt", "oof-fold*.npz", "emb-fold*.npy", "model.pt", "model.json", "*.tmp",
                            embedding_files.VECTORS, embedding_files.IDS, f"{embedding_files.OOF}*.npy"):
                for path in self.workdir.glob(pattern):
                    path.unlink()
            _write_atomic(marker, json.dumps({"fingerprint": fingerprint}).encode())

    def _decode(self) -> None:
        t0 = time.perf_counter()
        paths = [it.path for it in self.items] + [p for _, p in self.unlabelled]
        try:
            spill = data.spill_file(len(paths), self.config.image_size, self.workdir)
        except data.TooBig as exc:
            raise TrainingError(str(exc)) from None
        if spill is not None:
            self.notes.append(f"the decoded images did not fit in memory and were read from {spill.name} on disk")
            self.hooks.log(self.notes[-1])
        total = len(paths)

        def progress(done: int) -> None:
            self.hooks.progress(DECODE_SHARE * done / total, f"reading images: {done} of {total}")

        self.images, errors = data.decode_all(paths, self.config.image_size, progress=progress,
                                              cancelled=self.hooks.cancelled, spill=spill)
        if self.hooks.cancelled():
            raise Cancelled()
        n = len(self.items)
        bad = [(i, msg) for i, msg in errors if i < n]
        if bad:
            i, msg = bad[0]
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            raise TrainingError(f"image {self.items[i].image_id}: {msg}{more}")
        skipped = {i - n for i, _ in errors}
        if skipped:
            self.notes.append(f"{len(skipped)} unlabelled images could not be read and get no suggestion")
        self.stats = data.channel_stats(self.images[:n])
        self.device_labels = (self.targets if self.multi else self.labels).to(self.device)
        self.suggest = [(j, image_id) for j, (image_id, _) in enumerate(self.unlabelled) if j not in skipped]
        # Image id of each decoded row (labelled items, then unlabelled images): what an embedding row is keyed by.
        self.row_ids = np.array([it.image_id for it in self.items] + [i for i, _ in self.unlabelled], dtype=np.int64)
        if self.device.type == "cuda" and self.images.numel() < torch.cuda.mem_get_info(self.device)[0] // 4:
            self.images = self.images.to(self.device)  # small enough: batches are then gathered on the GPU
        self.timings["decode"] = time.perf_counter() - t0
        self.hooks.log(f"read {total} images at {self.config.image_size} px in {self.timings['decode']:.1f} s")

    def _stages(self) -> list[Stage]:
        held = self.config.holdout_source
        split = np.array([it.split for it in self.items])
        fold = np.array([it.fold for it in self.items])
        free = np.array([it.source != held for it in self.items])

        def where(mask: np.ndarray) -> np.ndarray:
            return np.flatnonzero(mask & free)

        stages = []
        if self.folds < 2:
            self.notes.append("one fold only: no out-of-sample predictions except for a held-out source")
        for k in range(self.folds if self.folds > 1 else 0):
            if not (fold == k).any() or not (free & (fold == k)).any():
                continue
            stages.append(Stage(f"fold{k + 1}", f"fold {k + 1}/{self.folds}", k + 1, where(fold != k),
                                where(fold == k), where(fold == k), early_stop=False, start=0.0))
        stages.append(Stage("final", "final", 0, where(split == "train"), where(split == "val"),
                            np.flatnonzero(~free), early_stop=True, start=0.0))
        work = [len(s.train) for s in stages]
        at, span = DECODE_SHARE, 1 - DECODE_SHARE - FINISH_SHARE
        for s, w in zip(stages, work):
            s.start, s.end = at, at + span * w / sum(work)
            at = s.end
        return stages

    # -- out-of-sample folds -------------------------------------------------------------------

    def _fold(self, stage: Stage) -> dict[int, np.ndarray]:
        path = self.workdir / f"oof-{stage.key}.npz"
        if path.exists():
            saved = np.load(path)
            self.hooks.log(f"{stage.name} was finished by an earlier attempt; its predictions are reused")
            self.hooks.progress(stage.end, f"{stage.name}: done earlier")
            return dict(zip(saved["image_ids"].tolist(), saved["probs"]))
        model = self._fit(stage)
        # The fold's embeddings go to disk as they come (written before the .npz that marks the fold done).
        emb_path = self.workdir / f"emb-{stage.key}.npy"
        dim = nets.head(model, self.config.model).in_features
        emb = np.lib.format.open_memmap(emb_path.with_suffix(".tmp"), mode="w+", dtype=embedding_files.DTYPE,
                                        shape=(len(stage.predict), dim))
        row = {int(i): r for r, i in enumerate(stage.predict)}

        def sink(index: np.ndarray, feats: np.ndarray, emb=emb) -> None:
            emb[[row[int(i)] for i in index]] = feats

        probs = self._predict(model, self.images, stage.predict, stage.name, sink=sink)
        emb.flush()
        del emb, sink  # the memory map closes before its file is renamed
        os.replace(emb_path.with_suffix(".tmp"), emb_path)
        ids = np.array([self.items[i].image_id for i in stage.predict], dtype=np.int64)
        with open(path.with_suffix(".tmp"), "wb") as f:
            np.savez(f, image_ids=ids, probs=probs)
        os.replace(path.with_suffix(".tmp"), path)
        (self.workdir / f"ckpt-{stage.key}.pt").unlink(missing_ok=True)
        return dict(zip(ids.tolist(), probs))

    # -- one model -----------------------------------------------------------------------------

    def _fit(self, stage: Stage) -> torch.nn.Module:
        """Train `stage`'s model (or continue it from its checkpoint); returns the best weights, in eval mode."""
        t0 = time.perf_counter()
        cfg, dev = self.config, self.device
        self._tune_threads(stage)
        model, optimizer, scheduler, scaler = self._setup(stage)
        state = {"epoch": 0, "best_loss": math.inf, "best_state": None, "bad": 0, "done": False}
        ckpt_path = self.workdir / f"ckpt-{stage.key}.pt"
        if ckpt_path.exists():
            try:
                ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
                if not ckpt["done"]:
                    model.load_state_dict(ckpt["model"])
                    optimizer.load_state_dict(ckpt["optimizer"])
                    scheduler.load_state_dict(ckpt["scheduler"])
                    scaler.load_state_dict(ckpt["scaler"])
                state.update({k: ckpt[k] for k in state})
                self.hooks.log(f"{stage.name}: resuming after epoch {state['epoch']}" if not state["done"] else
                               f"{stage.name} was trained by an earlier attempt; its weights are reused")
            except Exception as exc:  # noqa: BLE001 - unreadable or from another version: train the stage again
                self.hooks.log(f"{stage.name}: cannot resume from {ckpt_path.name} ({exc}); starting it over")
                model, optimizer, scheduler, scaler = self._setup(stage)
                state = {"epoch": 0, "best_loss": math.inf, "best_state": None, "bad": 0, "done": False}

        train_labels = self.labels[stage.train]
        if self.multi:  # the thresholds, not the loss, make up for rare classes (app.training.multilabel)
            weight = None
        else:
            counts = torch.bincount(train_labels, minlength=len(self.classes)).clamp_min(1).float()
            weight = (len(train_labels) / (len(self.classes) * counts)).to(dev)  # class-balanced loss

        while not state["done"]:
            epoch = state["epoch"]
            e0 = time.perf_counter()
            if epoch > 0:
                self.threads.tune()
            train_loss = self._train_epoch(model, optimizer, scheduler, scaler, weight, stage, epoch)
            metrics = {"train_loss": train_loss, "val_loss": None, "val_accuracy": None,
                       "lr": optimizer.param_groups[0]["lr"]}
            last = epoch + 1 >= cfg.epochs
            if len(stage.val) and (stage.early_stop or last):
                probs = self._predict(model, self.images, stage.val, stage.name)
                metrics["val_loss"], metrics["val_accuracy"] = self._val_metrics(probs, stage.val)
            stopping = stage.early_stop and metrics["val_loss"] is not None
            if stopping and metrics["val_loss"] < state["best_loss"] - MIN_DELTA:
                state.update(best_loss=metrics["val_loss"], best_state=_cpu_copy(model), bad=0)
            elif stopping:
                state["bad"] += 1
            state["epoch"] = epoch + 1
            state["done"] = last or state["bad"] >= cfg.patience
            if state["done"] and not stopping:  # nothing to stop on: the last weights
                state["best_state"] = _cpu_copy(model)
            metrics["seconds"] = time.perf_counter() - e0
            self._checkpoint(ckpt_path, state, model, optimizer, scheduler, scaler)
            self.hooks.epoch(stage.name, epoch + 1, metrics)
            shown = f", val accuracy {metrics['val_accuracy']:.3f}" if metrics["val_accuracy"] is not None else ""
            self.hooks.progress(self._fraction(stage, epoch + 1, 0, 1),
                                f"{stage.name}: epoch {epoch + 1} of {cfg.epochs}{shown}")
            if self.hooks.cancelled():
                raise Cancelled()
        model.load_state_dict(state["best_state"])
        model.eval()
        self.hooks.progress(stage.end, f"{stage.name}: trained")
        self.timings[stage.name] = time.perf_counter() - t0
        return model

    def _val_metrics(self, probs: np.ndarray, index: np.ndarray) -> tuple[float, float]:
        """(loss, accuracy) on `index`: cross-entropy and argmax accuracy, or for sets binary cross-entropy and
        the share of sets predicted exactly at 0.5 (the thresholds are chosen only after the final model)."""
        if self.multi:
            y = self.targets[index].numpy()
            p = np.clip(probs, 1e-7, 1 - 1e-7)
            loss = -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()
            return float(loss), float(((probs >= 0.5) == (y > 0)).all(axis=1).mean())
        labels = self.labels[index].numpy()
        picked = probs[np.arange(len(probs)), labels]
        return float(-np.log(np.clip(picked, 1e-12, None)).mean()), float((probs.argmax(1) == labels).mean())

    def _tune_threads(self, stage: Stage) -> None:
        """CPU threads for the cores others leave free (checked again each epoch); logged when it changed."""
        self.threads.tune()
        now = torch.get_num_threads()
        if self.device.type == "cpu" and now != self._logged_threads:
            self.hooks.log(f"{stage.name}: {now} CPU threads (was {self._logged_threads})")
            self._logged_threads = now

    def _setup(self, stage: Stage):
        """A fresh model on the device, its optimiser (AdamW), one-cycle schedule and loss scaler."""
        cfg, dev = self.config, self.device
        torch.manual_seed(self._seed(stage, -1))
        built = nets.build(cfg.model, len(self.classes), imagenet=self.imagenet)
        if built.pretrained:
            self.mean, self.std = list(nets.IMAGENET_MEAN), list(nets.IMAGENET_STD)
        else:  # the labelled images' own statistics (no labels involved, so no leak between folds)
            self.mean, self.std = self.stats
        self._norm = None
        model = built.model.to(dev)
        if dev.type in CHANNELS_LAST:
            model = model.to(memory_format=torch.channels_last)
        head = {id(p) for p in built.head}
        groups = [{"params": list(built.head), "lr": cfg.lr}]
        body = [p for p in model.parameters() if id(p) not in head]
        if body:
            groups.append({"params": body, "lr": cfg.lr * (BACKBONE_LR_FACTOR if built.pretrained else 1.0)})
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps = len(data.batches(len(stage.train), cfg.batch_size, shuffle=False))
        if cfg.epochs * steps >= 8:
            scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=[g["lr"] for g in groups], epochs=cfg.epochs, steps_per_epoch=steps, pct_start=0.25)
        else:  # too few steps for a one-cycle schedule (a tiny snapshot): keep the rate constant
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _step: 1.0)
        return model, optimizer, scheduler, devices.scaler(dev)

    def _train_epoch(self, model, optimizer, scheduler, scaler, weight, stage: Stage, epoch: int) -> float:
        model.train()
        gen = torch.Generator().manual_seed(self._seed(stage, epoch))
        torch.manual_seed(self._seed(stage, epoch))  # dropout: a resumed epoch replays exactly
        order = data.batches(len(stage.train), self.config.batch_size, shuffle=True, generator=gen)
        train = torch.from_numpy(stage.train)
        total = torch.zeros((), device=self.device)
        for b, idx in enumerate(order):
            self._check(stage, epoch, b, len(order))
            index = train[idx]
            x = data.augment(data.to_device(self.images, index, self.device), gen)
            x = self._normalise(x)
            y = self.device_labels[index.to(self.device)]
            with devices.autocast(self.device):
                logits = model(x)
            if self.multi:  # in float32: the sigmoid's tails are where half precision rounds to 0 and 1
                loss = F.binary_cross_entropy_with_logits(logits.float(), y)
            else:
                with devices.autocast(self.device):
                    loss = F.cross_entropy(logits, y, weight=weight)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            total += loss.detach().float() * len(idx)
        return float(total) / len(stage.train)

    def _seed(self, stage: Stage, epoch: int) -> int:
        return self.config.seed * 1_000_003 + stage.index * 10_007 + epoch + 1

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        if self._norm is None or self._norm[0].device != x.device:
            self._norm = tuple(torch.tensor(v, device=x.device).view(1, -1, 1, 1) for v in (self.mean, self.std))
        x = (x - self._norm[0]) / self._norm[1]
        return x.contiguous(memory_format=torch.channels_last) if x.device.type in CHANNELS_LAST else x

    @torch.no_grad()
    def _predict(self, model, images: torch.Tensor, index: np.ndarray, what: str, sink=None) -> np.ndarray:
        """Softmax probabilities (len(index), K), float32; for sets one sigmoid per class.

        With `sink`, also the penultimate layer of the same forward pass, chunk by chunk:
        sink(rows of `images`, float32 (n, D)) so that no caller holds every embedding at once."""
        was_training = model.training
        model.eval()
        out = []
        index = torch.from_numpy(np.asarray(index, dtype=np.int64))
        for idx in index.split(max(256, 2 * self.config.batch_size)):
            self._check(None, 0, 0, 1)
            x = self._normalise(data.to_device(images, idx, self.device))
            with devices.autocast(self.device):
                if sink is None:
                    logits = model(x)
                else:
                    feats = nets.penultimate(model, self.config.model, x)
                    logits = nets.head(model, self.config.model)(feats)
            if sink is not None:
                sink(idx.numpy(), feats.float().cpu().numpy())
            out.append((torch.sigmoid(logits.float()) if self.multi else torch.softmax(logits.float(), dim=1)).cpu())
        model.train(was_training)
        probs = torch.cat(out).numpy() if out else np.zeros((0, len(self.classes)), np.float32)
        return probs if self.multi else probs / probs.sum(axis=1, keepdims=True)

    def _check(self, stage: Stage | None, epoch: int, batch: int, batches: int) -> None:
        """Every CHECK_EVERY_S: stop if cancelled, and report progress inside the epoch."""
        now = time.monotonic()
        if now - self._last_check < CHECK_EVERY_S:
            return
        self._last_check = now
        if self.hooks.cancelled():
            raise Cancelled()
        if stage is not None:
            self.hooks.progress(self._fraction(stage, epoch, batch, batches),
                                f"{stage.name}: epoch {epoch + 1} of {self.config.epochs}")

    def _fraction(self, stage: Stage, epoch: int, batch: int, batches: int) -> float:
        done = (epoch + batch / max(1, batches)) / self.config.epochs
        return stage.start + (stage.end - stage.start) * min(1.0, done)

    def _checkpoint(self, path: Path, state: dict, model, optimizer, scheduler, scaler) -> None:
        ckpt = dict(state)
        if not state["done"]:  # a finished stage needs only its best weights
            ckpt.update(model=model.state_dict(), optimizer=optimizer.state_dict(),
                        scheduler=scheduler.state_dict(), scaler=scaler.state_dict())
        tmp = path.with_suffix(".tmp")
        torch.save(ckpt, tmp)
        os.replace(tmp, path)

    # -- the final model -----------------------------------------------------------------------

    def _finish(self, model, final: Stage, oos: dict[int, np.ndarray]) -> Result:
        items, held = self.items, self.config.holdout_source
        free = [i for i, it in enumerate(items) if it.source != held]
        parts = {name: np.array([i for i in free if items[i].split == name], dtype=np.int64)
                 for name in ("val", "test")}
        parts["holdout"] = final.predict
        writers = self._embedding_writers(model)
        try:
            report, suggestions = self._final_predictions(model, final, oos, parts, writers)
            embeddings = {**writers[0].finish(), **writers[1].finish()}
        except BaseException:
            for writer in writers:
                writer.abort()
            raise
        thresholds = None if self.thresholds is None else [float(t) for t in self.thresholds]
        model_path = nets.export(model, self.workdir, name=self.config.model, classes=self.classes,
                                 size=self.config.image_size, mean=self.mean, std=self.std, thresholds=thresholds)
        position = {it.image_id: i for i, it in enumerate(items)}
        order = sorted(oos, key=position.__getitem__)
        metrics = (self._evaluate(np.array([position[i] for i in order]), np.stack([oos[i] for i in order]))
                   if order else {})
        return Result(classes=self.classes, out_of_sample={i: oos[i].tolist() for i in order},
                      suggestions=suggestions, metrics=metrics, final=report, model_path=str(model_path),
                      device=self.device.type, notes=self.notes, timings=self.timings, embeddings=embeddings,
                      multi_label=self.multi, thresholds=thresholds)

    def _embedding_writers(self, model) -> tuple[embedding_files.Writer, embedding_files.Writer]:
        """(search, out-of-sample) writers; the second is filled first from the folds' files.

        Search (embeddings.npy): every labelled and unlabelled image through the final model, one space.
        Out-of-sample (oof-embeddings.npy): each labelled image through the fold model that did not train
        on it; a held-out source's, and those no fold predicted (one fold only), through the final model.
        """
        dim = nets.head(model, self.config.model).in_features
        labelled = self.row_ids[: len(self.items)]
        search = embedding_files.Writer(
            self.workdir, np.concatenate([labelled, np.array([i for _, i in self.suggest], dtype=np.int64)]), dim)
        oof = embedding_files.Writer(self.workdir, labelled, dim, prefix=embedding_files.OOF)
        done = np.zeros(len(self.items), dtype=bool)
        position = {it.image_id: i for i, it in enumerate(self.items)}
        for path in sorted(self.workdir.glob("oof-fold*.npz")):
            fold_ids = np.load(path)["image_ids"]
            rows = np.load(self.workdir / f"emb-{path.stem[4:]}.npy", mmap_mode="r")
            for start in range(0, len(fold_ids), embedding_files.COPY_ROWS):
                stop = start + embedding_files.COPY_ROWS
                oof.write(fold_ids[start:stop], rows[start:stop])
            done[[position[int(i)] for i in fold_ids]] = True
        self._by_fold = done  # False: the final model's embedding goes to the out-of-sample file too
        return search, oof

    def _final_predictions(self, model, final: Stage, oos: dict, parts: dict, writers) -> tuple[dict, dict]:
        items, (search, oof) = self.items, writers

        def sink(index: np.ndarray, feats: np.ndarray) -> None:
            search.write(self.row_ids[index], feats)
            missing = index[index < len(items)]
            missing = missing[~self._by_fold[missing]]
            if len(missing):
                oof.write(self.row_ids[missing], feats[np.isin(index, missing)])

        # Embeddings of every labelled image through the final model (one more forward pass, no training).
        self._predict(model, self.images, np.arange(len(items)), "embeddings", sink=sink)
        report: dict[str, dict | None] = {}
        predicted = {name: self._predict(model, self.images, index, name) for name, index in parts.items()
                     if len(index)}
        if self.multi:
            self._choose_thresholds(parts, predicted, oos)
        for name, index in parts.items():
            if name not in predicted:
                report[name] = None
                continue
            probs = predicted[name]
            report[name] = self._evaluate(index, probs)
            if name == "holdout":
                oos.update(zip((items[i].image_id for i in index), probs))
        n = len(items)
        suggestions = {}
        if self.suggest:
            probs = self._predict(model, self.images, np.array([n + j for j, _ in self.suggest]), "suggestions",
                                  sink=sink)
            suggestions = {image_id: p.tolist() for (_, image_id), p in zip(self.suggest, probs)}
        return report, suggestions

    def _choose_thresholds(self, parts: dict, predicted: dict, oos: dict) -> None:
        """Per-class thresholds on the final model's val predictions; without a val split, on the folds'
        out-of-sample predictions; with neither, 0.5 (noted)."""
        if "val" in predicted:
            index, probs = parts["val"], predicted["val"]
        elif oos:
            position = {it.image_id: i for i, it in enumerate(self.items)}
            index = np.array([position[i] for i in oos], dtype=np.int64)
            probs = np.stack(list(oos.values()))
            self.notes.append("no val split: the per-class thresholds were chosen on the out-of-sample predictions")
        else:
            self.thresholds = np.full(len(self.classes), multilabel.DEFAULT_THRESHOLD)
            self.notes.append("no val split and no folds: every class's threshold is 0.5")
            return
        self.thresholds = multilabel.choose_thresholds(self.targets[index].numpy(), probs)
        self.hooks.log("per-class thresholds: " + ", ".join(
            f"{name} {t:.2f}" for name, t in zip(self.classes, self.thresholds)))

    def _evaluate(self, index: np.ndarray, probs: np.ndarray) -> dict:
        chosen = [self.items[i] for i in index]
        if self.multi:
            return multilabel.evaluate_sets(self.targets[index].numpy(), probs, self.thresholds, classes=self.classes,
                                            sources=[it.source for it in chosen], tags=[it.tags for it in chosen])
        return evaluate(self.labels[index].numpy(), probs, classes=self.classes,
                        sources=[it.source for it in chosen], tags=[it.tags for it in chosen])


def _cpu_copy(model: torch.nn.Module) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _write_atomic(path: Path, payload: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(payload)
    os.replace(tmp, path)
