"""From `SequenceData` to training batches: per-fold normalisation, one item per sequence,
padding into batches.

A batch is a dict of tensors: "imu", "thm", "tof", "present" (B, T, C) float32, "valid"
(B, T) bool, the labels "y18", "y9", "ybin" (B,) int64 (-1 where unlabeled) and "index"
(B,), each sequence's index into the `SequenceData`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
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
