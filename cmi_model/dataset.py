"""From `SequenceData` to training batches: per-fold normalisation, one item per sequence,
padding into batches.

A batch is a dict of tensors: "imu", "thm", "tof", "present" (B, T, C) float32, "valid"
(B, T) bool, the labels "y18", "y9", "ybin" (B,) int64 (-1 where unlabeled) and "index"
(B,), each sequence's index into the `SequenceData`; T is the longest sequence of the batch.

Two ways to the same batches: `SequenceDataset` + `collate` in a `DataLoader` (`make_loader`,
item by item: the reference), and `prepare_tensors` + `TensorBatches` (what training uses): a
fold's sequences normalised and padded once into tensors, batches gathered from them by index,
bit for bit what the DataLoader yields with the same seed. `FoldCache` keeps the prepared
tensors, so every trial of a study (same folds) prepares each fold once.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import xxhash
from torch.utils.data import DataLoader, Dataset

from cmi_model.config import DataConfig
from cmi_model.data import PRESENCE, SequenceData
from cmi_model.features import IMU_FEATURES
from cmi_model.labels import EIGHTEEN_TO_BINARY, EIGHTEEN_TO_NINE, GESTURES
from cmi_model.schema import THM_COLUMNS, TOF_COLUMNS


@dataclass(frozen=True)
class Normalizer:
    """Per-channel mean/std fitted on the training fold's rows only (NaN ignored)."""

    imu: tuple[np.ndarray, np.ndarray]
    thm: tuple[np.ndarray, np.ndarray]
    tof: tuple[np.ndarray, np.ndarray]

    @classmethod
    def fit(cls, data: SequenceData, indices: np.ndarray) -> Normalizer:
        in_fold = np.zeros(data.n_sequences, dtype=bool)
        in_fold[indices] = True
        rows = np.repeat(in_fold, data.lengths)

        def stats(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            sub = np.asarray(a)[rows]
            # A channel with no value in the fold (e.g. ToF on IMU-only data) warns; it is handled below.
            with warnings.catch_warnings(action="ignore", category=RuntimeWarning):
                mean = np.nanmean(sub, axis=0, dtype=np.float64)
                std = np.nanstd(sub, axis=0, dtype=np.float64)
            mean = np.nan_to_num(mean)  # never seen in training: centre at 0
            std = np.where(np.isfinite(std) & (std > 1e-6), std, 1.0)
            return mean.astype(np.float32), std.astype(np.float32)

        return cls(stats(data.imu), stats(data.thm), stats(data.tof))


class SequenceDataset(Dataset):
    """One item per sequence: normalised arrays (last max_len steps) and the three labels."""

    def __init__(self, data: SequenceData, indices: np.ndarray, norm: Normalizer, cfg: DataConfig):
        self.data, self.indices, self.norm, self.cfg = data, np.asarray(indices), norm, cfg

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> dict:
        i = self.indices[k]
        d = self.data
        start, end = d.offsets[i], d.offsets[i + 1]
        start = max(start, end - self.cfg.max_len)  # keep the end: the gesture is the last phase

        def norm(a: np.ndarray, stats: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
            x = (np.asarray(a[start:end]) - stats[0]) / stats[1]
            return np.nan_to_num(x, nan=0.0).astype(np.float32)

        present = np.array(d.present[start:end], dtype=np.float32)
        thm, tof = norm(d.thm, self.norm.thm), norm(d.tof, self.norm.tof)
        if self.cfg.modalities == "imu":
            thm[:], tof[:], present[:, 1:] = 0.0, 0.0, 0.0
        g = int(d.gesture[i])
        return {
            "imu": norm(d.imu, self.norm.imu),
            "thm": thm,
            "tof": tof,
            "present": present,
            "y18": g,
            "index": int(i),
        }


def collate(items: list[dict]) -> dict[str, torch.Tensor]:
    """Pad to the longest sequence in the batch; `valid` marks real steps."""
    t = max(len(it["imu"]) for it in items)
    out: dict[str, torch.Tensor] = {}
    for key in ("imu", "thm", "tof", "present"):
        arr = np.zeros((len(items), t, items[0][key].shape[1]), dtype=np.float32)
        for b, it in enumerate(items):
            arr[b, : len(it[key])] = it[key]
        out[key] = torch.from_numpy(arr)  # (B, T, C)
    valid = np.zeros((len(items), t), dtype=bool)
    for b, it in enumerate(items):
        valid[b, : len(it["imu"])] = True
    out["valid"] = torch.from_numpy(valid)  # (B, T)
    out |= label_tensors(np.array([it["y18"] for it in items], dtype=np.int64))
    out["index"] = torch.tensor([it["index"] for it in items], dtype=torch.int64)
    return out


def label_tensors(y18: np.ndarray) -> dict[str, torch.Tensor]:
    """y18, y9, ybin for the three heads from the 18-class labels; -1 (unlabeled) stays -1."""
    labeled = y18 >= 0
    return {
        "y18": torch.from_numpy(y18),
        "y9": torch.from_numpy(np.where(labeled, EIGHTEEN_TO_NINE[np.maximum(y18, 0)], -1)),
        "ybin": torch.from_numpy(np.where(labeled, EIGHTEEN_TO_BINARY[np.maximum(y18, 0)], -1)),
    }


def make_loader(
    data: SequenceData,
    indices: np.ndarray,
    norm: Normalizer,
    cfg: DataConfig,
    *,
    shuffle: bool,
    seed: int = 0,
) -> DataLoader:
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(
        SequenceDataset(data, indices, norm, cfg),
        batch_size=cfg.batch_size,
        shuffle=shuffle,
        collate_fn=collate,
        generator=gen,
        num_workers=0,  # arrays are in memory (or mmapped); worker processes cost more than they save here
    )


@dataclass(frozen=True)
class FoldTensors:
    """Sequences normalised and padded once: sequence k's kept steps (the last max_len) are
    [k, :lengths[k]] of each (N, L, C) float32 array, zeros after; L the longest kept length."""

    imu: torch.Tensor
    thm: torch.Tensor
    tof: torch.Tensor
    present: torch.Tensor
    lengths: torch.Tensor  # (N,) int64
    labels: dict[str, torch.Tensor]  # y18, y9, ybin (N,) int64
    index: torch.Tensor  # (N,) int64: each sequence's index into the SequenceData
    # `lengths` kept on the host too when the rest moved to a device (`to`): batch widths are
    # read from it without waiting for the device.
    host_lengths: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.index)

    @property
    def nbytes(self) -> int:
        tensors = (
            self.imu,
            self.thm,
            self.tof,
            self.present,
            self.lengths,
            self.index,
            *self.labels.values(),
        )
        return sum(t.element_size() * t.nelement() for t in tensors)

    def to(self, device: torch.device) -> FoldTensors:
        """The same tensors on `device` (itself where they are there already)."""
        if self.index.device == torch.device(device):
            return self
        moved = {k: getattr(self, k).to(device) for k in ("imu", "thm", "tof", "present", "lengths", "index")}
        labels = {k: v.to(device) for k, v in self.labels.items()}
        return FoldTensors(**moved, labels=labels, host_lengths=self.lengths_on_host)

    @property
    def lengths_on_host(self) -> torch.Tensor:
        return self.host_lengths if self.host_lengths is not None else self.lengths.cpu()

    def batch(self, rows: torch.Tensor, width: int | None = None) -> dict[str, torch.Tensor]:
        """The batch of these rows (on the tensors' device), padded to its own longest sequence
        (what `collate` makes); `width`: that length where the caller knows it (no device sync)."""
        lengths = self.lengths[rows]
        t = int(lengths.max()) if width is None else width
        out = {key: getattr(self, key)[rows, :t] for key in ("imu", "thm", "tof", "present")}
        out["valid"] = torch.arange(t, device=lengths.device)[None, :] < lengths[:, None]
        out |= {key: v[rows] for key, v in self.labels.items()}
        out["index"] = self.index[rows]
        return out


def prepare_tensors(
    data: SequenceData, indices: np.ndarray, norm: Normalizer, cfg: DataConfig
) -> FoldTensors:
    """`SequenceDataset`'s items for every index at once, padded into FoldTensors (the same
    float32 operations per value, so the same numbers)."""
    indices = np.asarray(indices, dtype=np.int64)
    ends = data.offsets[indices + 1]
    lengths = np.minimum(ends - data.offsets[indices], cfg.max_len)  # keep the end of long sequences
    width = int(lengths.max(initial=0))
    steps = np.arange(width)
    kept = steps[None, :] < lengths[:, None]  # (N, L)
    rows = (ends - lengths)[:, None] + steps[None, :]
    rows = rows[kept]  # the source row of every kept step, sequence by sequence

    def padded(a: np.ndarray, stats: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
        x = np.asarray(a)[rows]
        if stats is None:
            x = x.astype(np.float32)
        else:
            x = np.nan_to_num((x - stats[0]) / stats[1], nan=0.0).astype(np.float32, copy=False)
        out = np.zeros((len(indices), width, a.shape[1]), dtype=np.float32)
        out[kept] = x
        return out

    thm, tof, present = padded(data.thm, norm.thm), padded(data.tof, norm.tof), padded(data.present, None)
    if cfg.modalities == "imu":
        thm[:], tof[:], present[..., 1:] = 0.0, 0.0, 0.0
    return FoldTensors(
        imu=torch.from_numpy(padded(data.imu, norm.imu)),
        thm=torch.from_numpy(thm),
        tof=torch.from_numpy(tof),
        present=torch.from_numpy(present),
        lengths=torch.from_numpy(lengths.astype(np.int64)),
        labels=label_tensors(data.gesture[indices].astype(np.int64)),
        index=torch.from_numpy(indices.copy()),
    )


class TensorBatches:
    """Batches of FoldTensors in a seeded order: the batches `make_loader` yields for the same
    indices, seed and shuffle, without the DataLoader.

    Shuffled, each epoch (each `iter`) takes from its generator exactly what
    `DataLoader(shuffle=True, generator=g)` takes (a base seed for worker processes, the epoch's
    permutation, and `RandomSampler`'s trailing empty-slice permutation), so the epochs see the
    same batches in the same order: each sequence once per epoch. Nothing is drawn before the
    first batch is asked for (Lightning calls `iter` once just to check that the object is iterable).

    The tensors may live on an accelerator: the order is drawn on the host (the same draws
    everywhere), moved there once per epoch, and each batch's width is read from a host copy of
    the lengths, so that no batch makes the host wait for the device.
    """

    def __init__(self, tensors: FoldTensors, batch_size: int, *, shuffle: bool, seed: int = 0):
        self.tensors, self.batch_size, self.shuffle = tensors, batch_size, shuffle
        self.generator = torch.Generator().manual_seed(seed)
        self._lengths = tensors.lengths_on_host

    def __len__(self) -> int:
        return math.ceil(len(self.tensors) / self.batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        n, g = len(self.tensors), self.generator
        if self.shuffle:
            torch.empty((), dtype=torch.int64).random_(generator=g)  # DataLoader's worker base seed
            order = torch.randperm(n, generator=g)
            # RandomSampler's `randperm(n)[: num_samples % n]`, drawn with the last batch there;
            # drawn now, since Lightning stops after len(self) batches without asking for more.
            torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        on_device = order.to(self.tensors.index.device)
        for start in range(0, n, self.batch_size):
            rows = slice(start, start + self.batch_size)
            width = int(self._lengths[order[rows]].max())
            yield self.tensors.batch(on_device[rows], width)


def _array_key(a: np.ndarray) -> tuple[int, str]:
    a = np.ascontiguousarray(a)
    return len(a), xxhash.xxh3_128_hexdigest(a.view(np.uint8).reshape(-1)) + str(a.dtype)


class FoldCache:
    """Prepared fold tensors for reuse by every trial that trains the same folds.

    Keyed by (data, indices normalised, indices fitted for the normaliser, DataConfig): the data
    by its content fingerprint and labels, or by identity where it has no fingerprint. Holds at
    most `max_bytes` of tensors (per process); a set that does not fit is prepared, used and not
    kept. Owned by one study's objective, so it holds that study's folds only. `builds` and
    `hits` count preparations and reuses.

    Tensors asked for on an accelerator are prepared on the host, moved there once and kept
    there only (batches are then gathered on the device). The bound follows the device: on the
    host `max_bytes`; on a CUDA device a set is kept while at least as much of its memory stays
    free after it (training needs the rest; the full preset's ~5.5 GB of folds fits a large
    card, not the host bound). `max_bytes=0` keeps nothing anywhere. `nbytes` counts what is
    kept, on every device.
    """

    def __init__(self, max_bytes: int = 2 << 30):
        self.max_bytes = max_bytes
        self.builds = self.hits = self.nbytes = 0
        self._host_bytes = 0
        self._tensors: dict[tuple, FoldTensors] = {}
        self._norms: dict[tuple, Normalizer] = {}
        self._data: dict[int, SequenceData] = {}  # keeps identity-keyed data alive: ids stay unique

    def _data_key(self, data: SequenceData) -> tuple:
        fp = data.meta.get("fingerprint")
        if fp is None:
            self._data[id(data)] = data
            return ("id", id(data))
        return (fp, _array_key(data.gesture), _array_key(data.offsets))

    def normalizer(self, data: SequenceData, fit_idx: np.ndarray) -> Normalizer:
        key = (self._data_key(data), _array_key(np.asarray(fit_idx, dtype=np.int64)))
        if key not in self._norms:
            if len(self._norms) >= 1024:  # a few floats each; bounded all the same
                self._norms.clear()
            self._norms[key] = Normalizer.fit(data, fit_idx)
        return self._norms[key]

    def tensors(
        self,
        data: SequenceData,
        indices: np.ndarray,
        fit_idx: np.ndarray,
        cfg: DataConfig,
        device: torch.device | str = "cpu",
    ) -> FoldTensors:
        """`indices` normalised with the Normalizer fitted on `fit_idx`, padded (see prepare_tensors),
        on `device`."""
        indices = np.asarray(indices, dtype=np.int64)
        fit_idx = np.asarray(fit_idx, dtype=np.int64)
        device = torch.device(device)
        key = (self._data_key(data), _array_key(indices), _array_key(fit_idx), cfg, str(device))
        if (hit := self._tensors.get(key)) is not None:
            self.hits += 1
            return hit
        prepared = prepare_tensors(data, indices, self.normalizer(data, fit_idx), cfg).to(device)
        self.builds += 1
        if self._room(device, prepared.nbytes):
            self._tensors[key] = prepared
            self.nbytes += prepared.nbytes
            self._host_bytes += prepared.nbytes if device.type == "cpu" else 0
        return prepared

    def _room(self, device: torch.device, nbytes: int) -> bool:
        """Whether a set of `nbytes`, already on `device`, may stay there (see the class)."""
        if self.max_bytes == 0:
            return False
        if device.type == "cuda":
            return torch.cuda.mem_get_info(device)[0] >= nbytes
        return self._host_bytes + nbytes <= self.max_bytes


def example_batch(
    batch_size: int = 6, steps: int = 12, *, imu_only: bool = False, seed: int = 0
) -> dict[str, torch.Tensor]:
    """A random batch in the network's input format, for tests and benchmarks.

    Standard-normal sensor values (as after normalisation), random labels, every sensor
    present (or only the IMU with `imu_only`), and random lengths between steps // 2 and
    `steps`, the first sequence always the shortest, so that padding is exercised.
    """
    g = torch.Generator().manual_seed(seed)
    y18 = torch.randint(0, len(GESTURES), (batch_size,), generator=g)
    lengths = torch.randint(steps // 2, steps + 1, (batch_size,), generator=g)
    lengths[0] = steps // 2
    imu = torch.randn(batch_size, steps, len(IMU_FEATURES), generator=g)
    thm = torch.randn(batch_size, steps, len(THM_COLUMNS), generator=g)
    tof = torch.randn(batch_size, steps, len(TOF_COLUMNS), generator=g)
    present = torch.ones(batch_size, steps, len(PRESENCE))
    if imu_only:
        present[..., 1:] = 0
        thm, tof = torch.zeros_like(thm), torch.zeros_like(tof)
    return {
        "imu": imu,
        "thm": thm,
        "tof": tof,
        "present": present,
        "valid": torch.arange(steps)[None, :] < lengths[:, None],
        **label_tensors(y18.numpy()),
        "index": torch.arange(batch_size),
    }
