"""The GPU path, checked without a GPU: workers spread over the visible GPUs (the device count
faked), the precision `auto` picks for a card, and batches gathered on the device the fold
tensors live on without reading a value back."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

import study.workers.gpus as gpus
from cmi_model import train
from cmi_model.config import DataConfig
from cmi_model.data import load_dir
from cmi_model.dataset import FoldCache, TensorBatches
from cmi_model.synthetic import generate
from study.cli import main
from study.workers.helper import Helpers


@pytest.fixture
def four_gpus(monkeypatch):
    """A node whose CUDA runtime reports 4 GPUs (the count respects CUDA_VISIBLE_DEVICES)."""

    def count():
        listed = os.environ.get(gpus.VISIBLE)
        return 4 if listed is None else len([n for n in listed.split(",") if n.strip() in "0123"])

    monkeypatch.delenv(gpus.VISIBLE, raising=False)
    monkeypatch.delenv(gpus.SHARING, raising=False)
    monkeypatch.setattr(gpus, "_device_count", count)


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(kv.decode().split("=", 1) for kv in raw if b"=" in kv)


def test_four_workers_on_four_gpus_get_four_different_devices(four_gpus):
    """The driver trains on the first visible GPU; each real helper process sees one other."""
    with gpus.placed(4, None) as placement:
        assert placement.workers == ("0", "1", "2", "3") and placement.per_gpu == 1
        assert placement.line() == "GPUs: 4 worker(s) on 4 of 4 visible GPU(s) (0, 1, 2, 3), one GPU each"
        helpers = Helpers(3, [placement.helper_env(i) for i in range(1, 4)])
        try:
            seen = [_environ(p.pid).get(gpus.VISIBLE) for p in helpers.procs]
        finally:
            helpers.close()
    assert ["0", *seen] == ["0", "1", "2", "3"]
    assert gpus.VISIBLE not in os.environ  # the driver's own environment is as it was


def test_more_workers_than_gpus_share_them_round_robin_each_capped(four_gpus):
    with gpus.placed(6, None) as placement:
        assert placement.workers == ("0", "1", "2", "3", "0", "1") and placement.per_gpu == 2
        assert placement.helper_env(4) == {gpus.VISIBLE: "0", gpus.SHARING: "2"}
        assert "up to 2 per GPU" in placement.line()
        assert os.environ[gpus.SHARING] == "2"  # the driver's own memory share
    assert gpus.SHARING not in os.environ


def test_gpu_option_narrows_to_positions_among_the_visible_ones(four_gpus, monkeypatch):
    monkeypatch.setenv(gpus.VISIBLE, "3,2,1,0")  # as a scheduler might set it
    with gpus.placed(2, (1, 3)) as placement:
        assert os.environ[gpus.VISIBLE] == "2,0" and placement.workers == ("2", "0")
    assert os.environ[gpus.VISIBLE] == "3,2,1,0"


def test_no_gpu_means_no_placement_and_nothing_said(monkeypatch):
    monkeypatch.setattr(gpus, "_device_count", lambda: 0)
    with gpus.placed(3, None) as placement:
        assert placement.workers == (None, None, None) and placement.line() is None
        assert placement.helper_env(1) == {}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--gpu", "0,0"], "each given once"),
        (["--gpu", "a"], "not a comma-separated list of GPU numbers"),
        (["--gpu", "7"], "0 of these 1 GPU(s) exist"),
    ],
)
def test_a_bad_gpu_list_is_one_line_and_exit_2(four_gpus, tmp_path, capsys, argv, message):
    url = f"sqlite:///{tmp_path / 'g.db'}"
    assert main(["run", "--preset", "tiny", "--storage", url, *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "g.db").exists()


@pytest.mark.parametrize(
    ("capability", "expected"), [((9, 0), "bf16-mixed"), ((8, 0), "bf16-mixed"), ((7, 5), "32-true")]
)
def test_auto_precision_takes_bf16_only_where_the_card_has_it(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Card")
    assert train.resolve_accelerator("auto", "auto") == ("gpu", expected)
    precision, why = train.auto_precision(True)
    assert precision == expected and f"compute capability {capability[0]}.{capability[1]}" in why
    assert train.resolve_accelerator("auto", "bf16-mixed") == ("gpu", "bf16-mixed")  # asked: kept
    assert train.resolve_accelerator("cpu", "auto") == ("cpu", "32-true")


@pytest.fixture(scope="module")
def fold(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-data")
    generate(out, n_subjects=4, seed=2)
    data = load_dir(out, cache_dir=None)
    return data, np.arange(len(data.gesture))


def test_batches_are_gathered_where_the_tensors_are_without_reading_them(fold):
    """On the meta device nothing can be read back (a sync would raise): batches still come, with
    the widths and rows of the host's batches."""
    data, idx = fold
    cfg = DataConfig(max_len=48, batch_size=5)
    host = FoldCache().tensors(data, idx, idx, cfg)
    meta = FoldCache().tensors(data, idx, idx, cfg, "meta")
    assert meta.imu.device.type == "meta" and meta.labels["y18"].device.type == "meta"
    on_host = list(TensorBatches(host, 5, shuffle=True, seed=3))
    on_meta = list(TensorBatches(meta, 5, shuffle=True, seed=3))
    assert len(on_host) == len(on_meta)
    for h, m in zip(on_host, on_meta, strict=True):
        assert all(m[k].device.type == "meta" and m[k].shape == h[k].shape for k in h)


def test_the_cache_keys_the_device_and_keeps_a_device_set_only_with_room(fold, monkeypatch):
    data, idx = fold
    cfg = DataConfig(max_len=48)
    cache = FoldCache(max_bytes=1)  # the host bound: nothing fits
    cache.tensors(data, idx, idx, cfg)
    assert (cache.builds, cache.nbytes) == (1, 0)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (1 << 40, 1 << 40))
    assert cache._room(torch.device("cuda", 0), 10**9)  # the device's bound is its free memory
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (10**6, 1 << 40))
    assert not cache._room(torch.device("cuda", 0), 10**9)
    assert not FoldCache(max_bytes=0)._room(torch.device("cuda", 0), 1)
