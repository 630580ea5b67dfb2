"""Where training runs: CUDA, then Apple MPS, then CPU; mixed precision on CUDA only."""

from __future__ import annotations

import contextlib
import os

import torch

from app.training.spec import TrainingError

OUT_OF_MEMORY = "ran out of memory: try a smaller batch size or image size"


def choose(name: str = "auto") -> torch.device:
    """The device for `name` (auto | cpu | cuda | mps); a forced one that is missing is an error."""
    cuda = torch.cuda.is_available()
    mps = hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name not in ("cpu", "cuda", "mps"):
        raise TrainingError(f"unknown device '{name}'; choose auto, cpu, cuda or mps")
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise TrainingError(f"device '{name}' was asked for but is not available on this worker")
    return torch.device(name)


def setup(device: torch.device) -> int:
    """Threads and kernels; returns the number of CPU threads torch will use.

    On CPU, one intra-op thread per core that is free now: cores this process
    may use, less the 1-minute load average (others' work). A busy core makes
    every parallel op wait for its slowest thread, which costs far more than
    the thread gains: on 2 shared cores with one busy, 1 thread trains 2-3x
    faster than 2. cuDNN autotuning and TF32 on CUDA.
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads())
    return torch.get_num_threads()


def cpu_threads() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        cpus = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    return max(1, min(cpus, round(cpus - busy)))


def autocast(device: torch.device):
    """float16 autocast on CUDA; nothing elsewhere (CPU and MPS train in float32)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def scaler(device: torch.device) -> torch.amp.GradScaler:
    """Loss scaling for float16 on CUDA; a disabled scaler (a no-op) elsewhere."""
    return torch.amp.GradScaler("cuda", enabled=device.type == "cuda")


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA / MPS / host out-of-memory, whichever way torch reports it."""
    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def free_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()
