"""Where training runs: CUDA, then Apple MPS, then CPU; mixed precision on CUDA only."""

from __future__ import annotations

import contextlib
import os
import time

import torch

from app.errors import TrainingError

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


def setup(device: torch.device) -> None:
    """cuDNN autotuning and TF32 on CUDA (CPU threads: see Threads)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


class Threads:
    """On CPU, one torch thread per core that other programs leave free, checked again at each `tune()`.

    A core busy with another program makes every parallel op wait for its
    slowest thread: on 2 cores with one taken, 2 threads trained 7x slower
    than 1 here. Others' load is the 1-minute load average at the start, and
    afterwards the CPU time they used since the last check (Linux /proc/stat,
    all CPU time less this process's own).
    """

    def __init__(self, device: torch.device):
        self.active = device.type == "cpu"
        try:
            self.cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # macOS
            self.cpus = os.cpu_count() or 1
        self._last = _cpu_sample()
        if self.active:
            try:
                others = os.getloadavg()[0]
            except OSError:
                others = 0.0
            self._set(others)

    def tune(self) -> tuple[int, int]:
        """(threads before, threads now)."""
        before = torch.get_num_threads()
        sample = _cpu_sample()
        if self.active and sample and self._last and sample[0] - self._last[0] > 1.0:
            wall, busy, own = (a - b for a, b in zip(sample, self._last))
            self._set(max(0.0, busy - own) / wall)
        self._last = sample
        return before, torch.get_num_threads()

    def _set(self, others: float) -> None:
        torch.set_num_threads(max(1, min(self.cpus, round(self.cpus - others))))


def _cpu_sample() -> tuple[float, float, float] | None:
    """(wall clock, CPU seconds used by everything, CPU seconds used by this process), or None."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:8]]  # user nice system idle iowait irq softirq
    except (OSError, ValueError):
        return None
    busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6]
    return time.monotonic(), busy / os.sysconf("SC_CLK_TCK"), time.process_time()


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
