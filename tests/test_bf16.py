"""bf16 autocast (the GPU's default precision), on the CPU: what feeds a log, a ratio or a learned
weight is computed in fp32, so the KL term cannot go negative and no arm diverges."""

import math

import numpy as np
import pytest
import torch

from cmi_model.config import MODEL_PRESETS, DataConfig, LossConfig, TrainConfig
from cmi_model.data import load_dir
from cmi_model.dataset import example_batch
from cmi_model.folds import subject_folds
from cmi_model.labels import aggregation_matrix
from cmi_model.losses import kl_consistency
from cmi_model.module import CMILitModule
from cmi_model.network import CMINetwork
from cmi_model.synthetic import generate
from cmi_model.train import CPU_BF16_MIN_WIDTH, fit_fold
from cmi_model.weighting import ALL_ARMS

BF16 = torch.autocast("cpu", dtype=torch.bfloat16)


def _confident_batch(g: torch.Generator, n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 logits of heads near convergence: a confident 18-class head and a 9-class head that
    almost agrees with its aggregation (KL of order 1e-4, where bf16's rounding is of its size)."""
    aggregate = torch.from_numpy(aggregation_matrix())
    logits18 = torch.randn(n, 18, generator=g) * 2
    logits18[torch.arange(n), torch.randint(0, 18, (n,), generator=g)] += 9.0
    p9 = torch.softmax(logits18, -1) @ aggregate
    logits9 = torch.log(p9) + 0.01 * torch.randn(n, 9, generator=g)
    return logits18, logits9


def test_the_kl_term_is_never_negative_under_bf16_autocast():
    g = torch.Generator().manual_seed(0)
    batches = [_confident_batch(g) for _ in range(200)]
    with BF16:
        # The hazard is real in this setting: autocast runs the aggregation matmul in bf16.
        assert (
            torch.softmax(batches[0][0], -1) @ torch.from_numpy(aggregation_matrix())
        ).dtype == torch.bfloat16
        kl = torch.stack([kl_consistency(a, b, 1.0) for a, b in batches])
    fp32 = torch.stack([kl_consistency(a, b, 1.0) for a, b in batches])
    assert kl.dtype == torch.float32
    assert float(kl.min()) > 0, f"{int((kl <= 0).sum())} of 200 batches gave KL ≤ 0"
    assert float(fp32.median()) < 1e-3  # near convergence, where rounding of 1e-4 would matter
    torch.testing.assert_close(kl, fp32, rtol=0, atol=1e-7)  # the same fp32 computation


def test_heads_and_weighting_are_fp32_under_bf16_autocast():
    torch.manual_seed(0)
    cfg = LossConfig(auto_weighting="uncertainty")
    module = CMILitModule(CMINetwork(MODEL_PRESETS["tiny"]), cfg, TrainConfig())
    with BF16:
        out, terms, total, weights = module.model_step(example_batch(8, 16))
    assert {k: v.dtype for k, v in out.items()} == dict.fromkeys(out, torch.float32)
    assert total.dtype == torch.float32 and all(w.dtype == torch.float32 for w in weights.values())
    assert all(t.dtype == torch.float32 for t in terms.values())


# Epochs for the KL term to converge on this fold (4 subjects, 200 training sequences of ≤ 32
# steps, batches of 32): in fp32 its epoch mean falls from 0.48 to 0.085 by epoch 5 and then
# stays within 0.069-0.085 up to epoch 14 (measured here), so 8 epochs train on its plateau,
# where a weighting that takes the KL's log or ratio has settled.
CONVERGED_EPOCHS = 8


@pytest.fixture(scope="module")
def small_fold(tmp_path_factory):
    out = tmp_path_factory.mktemp("bf16-data")
    generate(out, n_subjects=4, seed=5)
    data = load_dir(out, cache_dir=None)
    return data, subject_folds(data, 2, seed=0)[0]


@pytest.mark.slow
@pytest.mark.parametrize("arm", ALL_ARMS)
def test_every_arm_trains_a_converged_fold_in_bf16_with_finite_losses(small_fold, arm):
    data, (tr, va) = small_fold
    r = fit_fold(
        data,
        tr,
        va,
        model_cfg=MODEL_PRESETS["tiny"],
        loss_cfg=LossConfig(auto_weighting=arm),
        data_cfg=DataConfig(max_len=32, batch_size=32),
        train_cfg=TrainConfig(
            max_epochs=CONVERGED_EPOCHS, lr=3e-3, warmup_epochs=0.5, precision="bf16-mixed"
        ),
    )
    assert r.precision == "bf16-mixed" and r.epochs == CONVERGED_EPOCHS  # no divergence: every epoch ran
    for term, losses in r.loss_trajectory.items():
        assert all(math.isfinite(v) for v in losses), (term, losses)
    kl = r.loss_trajectory["kl"]
    assert min(kl) >= 0 and kl[-1] < kl[0] / 2, kl  # it fell to its plateau, never below 0
    assert all(math.isfinite(v) for w in r.weight_trajectory.values() for v in w)
    assert np.isfinite(r.val_probs).all() and r.score > 0.3


@pytest.mark.parametrize(
    "flags, capability, units",
    [
        ("fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile", "AVX512", ("amx_bf16", "avx512_bf16")),
        ("fpu avx2 avx512f avx512_bf16", "AVX512", ("avx512_bf16",)),
        ("fpu avx2 fma", "AVX2", ()),
        ("fpu avx2 avx512_bf16 amx_bf16", "AVX2", ()),  # torch dispatches no AVX512 kernels there
    ],
)
def test_bf16_units_are_read_from_cpuinfo_where_torch_can_use_them(monkeypatch, flags, capability, units):
    from cmi_model.train import cpu_bf16_units

    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    cpuinfo = (
        f"processor\t: 0\nmodel name\t: test\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n"
    )
    assert cpu_bf16_units(cpuinfo) == units


@pytest.mark.parametrize(
    "units, width, expected",
    [
        ((), 256, "32-true"),  # no bf16 units: bf16 runs in a reference kernel, far slower
        (("amx_bf16",), 32, "32-true"),  # the tiny model: casts and the attention's backward dominate
        (("amx_bf16",), CPU_BF16_MIN_WIDTH - 1, "32-true"),
        (("amx_bf16", "avx512_bf16"), CPU_BF16_MIN_WIDTH, "bf16-mixed"),
        (("avx512_bf16",), 256, "bf16-mixed"),  # the public model
    ],
)
def test_auto_takes_bf16_on_a_cpu_only_with_bf16_units_and_a_wide_enough_model(
    monkeypatch, units, width, expected
):
    from cmi_model import train

    monkeypatch.setattr(train, "cpu_bf16_units", lambda: units)
    model = MODEL_PRESETS["public"].model_copy(update={"d_model": width, "n_heads": 1})
    assert train.resolve_accelerator("cpu", "auto", model) == ("cpu", expected)
    precision, why = train.auto_precision(False, model)
    assert precision == expected
    assert ("no bf16 units" in why) == (not units) and (units == () or ", ".join(units) in why), why
    assert train.resolve_accelerator("cpu", "32-true", model) == ("cpu", "32-true")  # asked: kept
    assert train.resolve_accelerator("cpu", "bf16-mixed", MODEL_PRESETS["tiny"]) == ("cpu", "bf16-mixed")


def test_a_worker_with_auto_trains_in_the_precision_its_study_was_made_with(tmp_path, capsys):
    """A study made in bf16 (a GPU, or a CPU with bf16 units) and joined by a worker whose machine
    would pick fp32 for `auto`: the worker trains bf16, says so, and is not refused. An explicit
    other precision is still refused: its scores would not be comparable."""
    import optuna

    from study import records
    from study.cli import main

    url = f"sqlite:///{tmp_path / 'p.db'}"
    run = [
        "run",
        "--preset",
        "tiny",
        "--arms",
        "fixed",
        "--storage",
        url,
        "--study-name",
        "p",
        "--epochs",
        "1",
    ]
    assert main([*run, "--n-trials", "1", "--precision", "bf16-mixed"]) == 0
    capsys.readouterr()
    assert main([*run, "--n-trials", "2"]) == 0  # auto: fp32 for the tiny model on any CPU
    assert "precision bf16-mixed: as the study's earlier workers trained (this machine picks 32-true)" in (
        capsys.readouterr().out
    )
    trials = optuna.load_study(study_name="p-fixed", storage=url).trials
    assert [records.read_trial(t).precision for t in trials] == ["bf16-mixed", "bf16-mixed"]
    assert main([*run, "--n-trials", "3", "--precision", "32-true"]) == 2
    assert "created with train.precision='bf16-mixed', this run asks for '32-true'" in capsys.readouterr().err
