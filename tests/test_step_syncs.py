"""A training step never makes the host wait for the device: no tensor built from a Python number
and no tensor read back as a number (`.item()`, `float()`, `bool()`, ...) per step, for every
arm. Counted on the CPU with the calls patched: one more step must add no call by the project or
by Lightning. Calls inside TorchJD are counted apart: its iterative aggregators test their own
convergence on the host (MGDA's Frank-Wolfe, PCGrad's conflicts, UPGrad's QP), so the
gradient-level arms wait for the device by design; FAMO's Adam reads its host-side step count."""

import os
import sys

import pytest
import pytorch_lightning as pl
import torch

from cmi_model.config import MODEL_PRESETS, LossConfig, TrainConfig
from cmi_model.dataset import example_batch
from cmi_model.module import CMILitModule
from cmi_model.network import CMINetwork
from cmi_model.weighting import ARMS, SCHEMES

_TORCH = os.path.dirname(torch.__file__) + os.sep  # not torchjd, which starts the same

# Where a Python number becomes a tensor (on a GPU: a host-to-device copy) ...
BUILDERS = ("tensor", "as_tensor", "scalar_tensor", "full")
# ... and where a tensor becomes a Python number (on a GPU: the host waits for the device).
READERS = ("item", "tolist", "__float__", "__int__", "__bool__", "__index__")


class _Counter:
    def __init__(self, monkeypatch):
        self.calls: dict[str, int] = {}
        for name in BUILDERS:
            monkeypatch.setattr(torch, name, self._wrap(name, getattr(torch, name)))
        for name in READERS:
            monkeypatch.setattr(torch.Tensor, name, self._wrap(name, getattr(torch.Tensor, name)))

    def _wrap(self, name, real):
        def counted(*args, **kwargs):
            key = (_caller(), name)
            self.calls[key] = self.calls.get(key, 0) + 1
            return real(*args, **kwargs)

        return counted


def _caller() -> str:
    """Whose code made the call: the first frame outside torch itself."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(_TORCH):
        frame = frame.f_back
    path = frame.f_code.co_filename if frame is not None else ""
    if f"{os.sep}torchjd{os.sep}" in path:
        return "torchjd"
    if f"{os.sep}pytorch_lightning{os.sep}" in path or f"{os.sep}lightning{os.sep}" in path:
        return "lightning"
    return "project"


def _calls_in_one_epoch(arm: str, steps: int, monkeypatch) -> dict[str, int]:
    torch.manual_seed(0)
    cfg = LossConfig(auto_weighting=arm)
    module = CMILitModule(CMINetwork(MODEL_PRESETS["tiny"]), cfg, TrainConfig(warmup_epochs=0))
    batches = [example_batch(8, 16, seed=i) for i in range(steps)]
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with monkeypatch.context() as patch:
        counter = _Counter(patch)
        trainer.fit(module, torch.utils.data.DataLoader(batches, batch_size=None))
    return counter.calls


@pytest.mark.parametrize("arm", ARMS)
def test_no_training_step_builds_or_reads_a_python_number(arm, monkeypatch):
    two, five = _calls_in_one_epoch(arm, 2, monkeypatch), _calls_in_one_epoch(arm, 5, monkeypatch)
    per_step = {k: (five.get(k, 0) - two.get(k, 0)) / 3 for k in set(two) | set(five)}
    per_step = {k: v for k, v in per_step.items() if v}
    assert not {k: v for k, v in per_step.items() if k[0] != "torchjd"}, per_step
    if SCHEMES[arm].family != "gradient-level" and arm != "famo":
        assert not per_step, per_step  # TorchJD's scalarizers add none either


def test_the_counter_sees_a_read_back_and_who_made_it():
    """The patched calls are the ones a sync would make: a step that reads its loss is counted."""
    patch = pytest.MonkeyPatch()
    try:
        counter = _Counter(patch)
        loss = torch.ones(()) * 2
        if loss > 1:  # __bool__
            float(loss)
        torch.tensor(1.0)
    finally:
        patch.undo()
    assert counter.calls == {
        ("project", "__bool__"): 1,
        ("project", "__float__"): 1,
        ("project", "tensor"): 1,
    }
