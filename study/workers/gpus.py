"""Which GPU each worker of one command trains on: the visible GPUs, round robin.

A command with W workers on a node with G visible GPUs puts worker i (the driver is worker 0,
its helpers 1..W−1) on GPU i mod G: with W ≤ G every worker has a GPU of its own; with more,
ceil(W/G) share one, each capped at its share of the memory. A helper gets its GPU as its own
`CUDA_VISIBLE_DEVICES` (it sees that one GPU only, as cuda:0); the driver trains on the first.
`--gpu 2,3` narrows the visible GPUs to those (positions among the visible ones, as
`CUDA_VISIBLE_DEVICES` or Slurm set them); a worker started on its own machine or by a
scheduler takes `--gpu` or its `CUDA_VISIBLE_DEVICES` the same way.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from dataclasses import dataclass

from cmi_model.errors import InputError

VISIBLE = "CUDA_VISIBLE_DEVICES"
# How many workers share this process's GPU (set by the driver for itself and its helpers): the
# share of the GPU's memory each may take (`cap_memory`).
SHARING = "CMI_WORKERS_PER_GPU"


def _device_count() -> int:
    import torch

    return torch.cuda.device_count()


def visible_gpus() -> list[str]:
    """The GPUs this process may use, by the names `CUDA_VISIBLE_DEVICES` gives them (indices or
    UUIDs), or their indices where it is not set."""
    n = _device_count()
    names = visible_names_unread()
    return [str(i) for i in range(n)] if names is None else names[:n]


def parse_gpu_list(text: str) -> tuple[int, ...]:
    """`--gpu 0,2`: positions among the visible GPUs, each once."""
    try:
        positions = tuple(int(p) for p in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of GPU numbers") from None
    if any(p < 0 for p in positions) or len(set(positions)) != len(positions):
        raise argparse.ArgumentTypeError(f"{text!r}: GPU numbers are 0 or more, each given once")
    return positions


@dataclass(frozen=True)
class Placement:
    """Each worker's GPU (None: no GPU visible, every worker on the CPU)."""

    gpus: tuple[str, ...]
    workers: tuple[str | None, ...]

    @property
    def per_gpu(self) -> int:
        return -(-len(self.workers) // len(self.gpus)) if self.gpus else 0

    def helper_env(self, helper: int) -> dict[str, str]:
        """Environment for helper `helper` (1-based: worker 0 is the driver)."""
        gpu = self.workers[helper]
        return {} if gpu is None else {VISIBLE: gpu, SHARING: str(self.per_gpu)}

    def line(self) -> str | None:
        """What the command says at start-up; None without a GPU."""
        if not self.gpus:
            return None
        n, g = len(self.workers), len(self.gpus)
        share = (
            "one GPU each" if n <= g else f"up to {self.per_gpu} per GPU, each capped at its share of memory"
        )
        used = sorted(set(self.workers), key=self.gpus.index)
        return f"GPUs: {n} worker(s) on {len(used)} of {g} visible GPU(s) ({', '.join(used)}), {share}"


def place(workers: int, gpus: list[str]) -> Placement:
    return Placement(tuple(gpus), tuple(gpus[i % len(gpus)] if gpus else None for i in range(workers)))


@contextlib.contextmanager
def placed(workers: int, chosen: tuple[int, ...] | None):
    """The placement of `workers` workers; with `chosen` (`--gpu`), this process sees those GPUs
    only while the command runs (set before CUDA starts, which reads the variable once)."""
    before = {k: os.environ.get(k) for k in (VISIBLE, SHARING)}
    try:
        if chosen is not None:
            asked = ",".join(map(str, chosen))
            names = visible_names_unread()
            if names is not None and max(chosen) >= len(names):
                raise InputError(f"--gpu {asked}: {VISIBLE} makes only {len(names)} GPU(s) visible")
            os.environ[VISIBLE] = ",".join(names[p] if names is not None else str(p) for p in chosen)
        placement = place(workers, visible_gpus())
        if chosen is not None and len(placement.gpus) != len(chosen):
            raise InputError(f"--gpu {asked}: {len(placement.gpus)} of these {len(chosen)} GPU(s) exist")
        if placement.gpus:  # the driver's own share (a helper's was set by its driver)
            os.environ.setdefault(SHARING, str(placement.per_gpu))
        yield placement
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def visible_names_unread() -> list[str] | None:
    """`CUDA_VISIBLE_DEVICES`'s names without asking CUDA (which would fix them for this process);
    None where it is not set (then position i is GPU i)."""
    listed = os.environ.get(VISIBLE)
    return None if listed is None else [n.strip() for n in listed.split(",") if n.strip()]


def cap_memory() -> None:
    """Cap this process's share of its GPU's memory when several workers share it (the caching
    allocator would otherwise let the first one take what the others need)."""
    import torch

    sharing = int(os.environ.get(SHARING, "1") or 1)
    if sharing > 1 and torch.cuda.is_available():
        torch.cuda.set_per_process_memory_fraction(0.95 / sharing)
