import math
import typing
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from cmi_model import module
from cmi_model import weighting as wmod
from cmi_model.config import LossConfig, ModelConfig, TrainConfig
from cmi_model.data import PRESENCE
from cmi_model.dataset import example_batch as make_batch
from cmi_model.features import IMU_FEATURES
from cmi_model.labels import EIGHTEEN_TO_BINARY, EIGHTEEN_TO_NINE, aggregation_matrix
from cmi_model.losses import inverse_frequency_weights, kl_consistency, loss_terms
from cmi_model.module import CMILitModule
from cmi_model.network import CMINetwork
from cmi_model.weighting import ARMS, Weighting, build_weighting, scheme
from cmi_model.weighting.direct import DirectWeighting
from cmi_model.weighting.fixed import FixedWeighting
from cmi_model.weighting.uncertainty import UncertaintyWeighting

TINY = ModelConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32, kernel_size=5, dropout=0.0)


def test_example_batch_has_the_collate_format():
    b = make_batch(6, 12)
    assert b["imu"].shape == (6, 12, len(IMU_FEATURES)) and b["present"].shape == (6, 12, len(PRESENCE))
    assert b["thm"].shape == (6, 12, 5) and b["tof"].shape == (6, 12, 320)
    assert b["valid"].dtype == torch.bool and not b["valid"][0, 6:].any() and b["valid"][:, :6].all()
    y18 = b["y18"].numpy()
    assert (b["y9"].numpy() == EIGHTEEN_TO_NINE[y18]).all() and (
        b["ybin"].numpy() == EIGHTEEN_TO_BINARY[y18]
    ).all()
    imu_only = make_batch(imu_only=True)
    assert not imu_only["present"][..., 1:].any() and not imu_only["tof"].any()
    assert torch.equal(make_batch(seed=3)["imu"], make_batch(seed=3)["imu"])


LOSSES = {
    "multiclass": torch.tensor(2.0),
    "binary": torch.tensor(0.7),
    "nine_class": torch.tensor(1.5),
    "kl": torch.tensor(0.3),
}


# ------------------------------------------------------------------ config


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"alpha": 1.5}, "alpha"),
        ({"nine_class_loss_weight": -0.1}, "nine_class_loss_weight"),
        ({"kl_weight": -1}, "kl_weight"),
        ({"auto_weight_clamp": (1.0, 1.0)}, "auto_weight_clamp"),
        ({"kl_temperature": 0}, "kl_temperature"),
        ({"auto_weighting": "magic"}, "auto_weighting"),
        ({"dwa_temperature": 0}, "dwa_temperature"),
        ({"famo_lr": -0.01}, "famo_lr"),
        ({"alpah": 0.5}, "alpah"),
    ],
)
def test_loss_config_rejects_impossible_values(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        LossConfig(**kwargs)


def test_loss_config_defaults_are_the_plan():
    c = LossConfig()
    assert (c.alpha, c.nine_class_loss_weight, c.kl_weight, c.kl_temperature) == (0.5, 0.2, 0.1, 1.0)
    assert c.nine_class_head_enabled and c.auto_weighting == "fixed" and c.auto_weight_clamp == (-10.0, 10.0)
    assert c.uncertainty_init_value == 0.0 and c.weight_lr_multiplier == 0.1
    assert (c.dwa_temperature, c.famo_lr) == (2.0, 0.025)  # the DWA and FAMO papers' defaults
    assert c.active_terms() == ("multiclass", "binary", "nine_class", "kl")


def test_model_config_rejects_bad_heads():
    with pytest.raises(ValidationError, match="divisible"):
        ModelConfig(d_model=30, n_heads=4)


# ------------------------------------------------------------------ weighting


def test_fixed_equals_formula_exactly():
    cfg = LossConfig(alpha=0.3, nine_class_loss_weight=0.25, kl_weight=0.4)
    total, w = FixedWeighting(cfg)(LOSSES)
    by_hand = 0.3 * 2.0 + (1 - 0.3) * 0.7 + 0.25 * 1.5 + 0.4 * 0.3
    assert float(total) == pytest.approx(by_hand, rel=1e-7)
    assert {k: round(float(v), 6) for k, v in w.items()} == {
        "multiclass": 0.3,
        "binary": 0.7,
        "nine_class": 0.25,
        "kl": 0.4,
    }
    assert list(FixedWeighting(cfg).parameters()) == []


SCHEME = """
from cmi_model.weighting.equal import EqualWeighting


class {name}(EqualWeighting):
    arm = "{arm}"
    label, paper, position = "{arm}", "none", {position}
    {color}
"""


@pytest.mark.parametrize(
    "files, error",
    [
        (
            {"one": ("One", "one", 1, 'color = "#000"'), "two": ("Two", "two", 1, 'color = "#111"')},
            "position 1 is already one's",
        ),
        ({"one": ("One", "one", 1, "")}, "One does not state its color"),
        ({"one": ("One", "uno", 1, 'color = "#000"')}, "its scheme's arm is 'uno', not the file's name"),
    ],
)
def test_a_scheme_file_that_breaks_the_rules_is_refused_naming_it(tmp_path, monkeypatch, files, error):
    name = "schemes_" + "".join(c if c.isalnum() else "_" for c in tmp_path.name)  # new to sys.modules
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    for file, (cls, arm, position, color) in files.items():
        (package / f"{file}.py").write_text(SCHEME.format(name=cls, arm=arm, position=position, color=color))
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError, match=error) as raised:
        wmod._discover([str(package)], name)
    assert str(package) in str(raised.value)  # the line names the file


def test_every_scheme_file_is_an_arm_and_a_loss_config_value():
    files = sorted(
        p.stem for p in Path(wmod.__file__).parent.glob("*.py") if p.stem not in ("__init__", "base")
    )
    schemes = [f for f in files if not f.startswith("_")]
    assert sorted(ARMS) == schemes and len(schemes) >= 15  # the package's files are the registry
    assert typing.get_args(LossConfig.model_fields["auto_weighting"].annotation) == ARMS
    assert ARMS[0] == "fixed" and LossConfig().auto_weighting == "fixed"
    assert LossConfig(auto_weighting="none").auto_weighting == "fixed"  # the fixed scheme's older name
    for arm in ARMS:
        w = build_weighting(LossConfig(auto_weighting=arm))
        assert isinstance(w, Weighting) and w.arm == arm and type(w) is scheme(arm)
    assert FixedWeighting(LossConfig()).logged_params() == {}
    with pytest.raises(ValueError, match="unknown arm 'magic'"):
        scheme("magic")
    with pytest.raises(TypeError):
        Weighting()


def test_terms_absent_when_head_off_or_kl_zero():
    assert LossConfig(kl_weight=0).active_terms() == ("multiclass", "binary", "nine_class")
    assert LossConfig(nine_class_head_enabled=False).active_terms() == ("multiclass", "binary")
    u = UncertaintyWeighting(LossConfig(auto_weighting="uncertainty", kl_weight=0))
    assert set(u.s.keys()) == {"multiclass", "binary", "nine_class"}
    u = UncertaintyWeighting(LossConfig(auto_weighting="uncertainty", nine_class_head_enabled=False))
    assert set(u.s.keys()) == {"multiclass", "binary"}
    d = DirectWeighting(LossConfig(auto_weighting="direct", kl_weight=0))
    assert set(d.p.keys()) == {"logit_alpha", "log_nine_class"}


def test_uncertainty_parameters_names_init_and_grad():
    u = build_weighting(LossConfig(auto_weighting="uncertainty", uncertainty_init_value=0.7))
    names = dict(u.named_parameters())
    assert set(names) == {"s.multiclass", "s.binary", "s.nine_class", "s.kl"}
    for p in names.values():
        assert p.requires_grad and float(p.detach()) == pytest.approx(0.7)


def test_uncertainty_total_is_hand_computation_and_grads_reach_every_s():
    u = UncertaintyWeighting(LossConfig(auto_weighting="uncertainty"))
    with torch.no_grad():
        for i, p in enumerate(u.s.values()):
            p.fill_(0.1 * (i + 1))
    total, w = u(LOSSES)
    s = {k: 0.1 * (i + 1) for i, k in enumerate(u.s.keys())}
    by_hand = sum(math.exp(-s[k]) * float(LOSSES[k]) + s[k] for k in s)
    assert float(total) == pytest.approx(by_hand, rel=1e-6)
    assert float(w["kl"]) == pytest.approx(math.exp(-s["kl"]), rel=1e-6)
    total.backward()
    for k, p in u.s.items():
        # d/ds (e^{-s} L + s) = 1 - e^{-s} L
        assert float(p.grad) == pytest.approx(1 - math.exp(-s[k]) * float(LOSSES[k]), rel=1e-5)


@pytest.mark.parametrize("strategy", ["uncertainty", "direct"])
def test_projection_keeps_log_weights_in_the_clamp_with_gradient_at_the_bound(strategy):
    w = build_weighting(LossConfig(auto_weighting=strategy, auto_weight_clamp=(-1.0, 2.0)))
    params = list(w.parameters())
    opt = torch.optim.SGD(params, lr=100.0)  # steps far beyond either bound
    for _ in range(3):
        opt.zero_grad()
        (-w(LOSSES)[0] if strategy == "direct" else w(LOSSES)[0]).backward()
        opt.step()
        assert any(not -1.0 <= float(p) <= 2.0 for p in params)  # the step left the box ...
        w.project()
        assert all(-1.0 <= float(p) <= 2.0 for p in params)  # ... the projection brings it back
    assert any(float(p) in (-1.0, 2.0) for p in params)
    opt.zero_grad()
    w(LOSSES)[0].backward()
    # forward does not clamp: a parameter on its bound still gets its true, non-zero gradient
    assert all(p.grad is not None and float(p.grad) != 0 for p in params)
    assert math.isfinite(float(w(LOSSES)[0]))


def test_fixed_projection_is_a_no_op():
    FixedWeighting(LossConfig()).project()


def test_direct_initialised_at_fixed_values_and_shrinks_aux_weights():
    cfg = LossConfig(auto_weighting="direct", alpha=0.5, nine_class_loss_weight=0.2, kl_weight=0.1)
    d = build_weighting(cfg)
    _, w = d(LOSSES)
    assert {k: round(float(v), 5) for k, v in w.items()} == {
        "multiclass": 0.5,
        "binary": 0.5,
        "nine_class": 0.2,
        "kl": 0.1,
    }
    opt = torch.optim.SGD(d.parameters(), lr=0.5)
    for _ in range(20):
        opt.zero_grad()
        d(LOSSES)[0].backward()
        opt.step()
    _, w2 = d(LOSSES)
    # Nothing regularises the direct weights: minimising the loss shrinks the auxiliary terms.
    assert float(w2["nine_class"]) < 0.2 and float(w2["kl"]) < 0.1


# ------------------------------------------------------------------ losses


def test_kl_zero_when_nine_head_matches_aggregate_and_positive_otherwise():
    logits18 = torch.randn(4, 18)
    p9 = torch.softmax(logits18, -1) @ torch.from_numpy(aggregation_matrix())
    assert float(kl_consistency(logits18, torch.log(p9), 1.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(kl_consistency(logits18, torch.randn(4, 9), 1.0)) > 1e-3


def test_kl_uses_hierarchy_not_positions():
    # A 9-class distribution built by taking "the first 8 classes as targets" of a
    # shuffled order would differ; with the hierarchy the aggregate is exact.
    logits18 = torch.full((1, 18), -20.0)
    logits18[0, 17] = 20.0  # all mass on the last gesture, a non-target
    nine = torch.full((1, 9), -20.0)
    nine[0, 8] = 20.0  # non_target
    assert float(kl_consistency(logits18, nine, 1.0)) < 1e-6


def test_inverse_frequency_weights():
    w = inverse_frequency_weights(np.array([0, 0, 0, 1]), 3)
    assert w.tolist() == pytest.approx([4 / 6, 2.0, 0.0])


def test_loss_terms_keys_follow_config():
    out = CMINetwork(TINY)(make_batch())
    assert set(loss_terms(out, make_batch(), LossConfig())) == {"multiclass", "binary", "nine_class", "kl"}
    assert set(loss_terms(out, make_batch(), LossConfig(kl_weight=0))) == {
        "multiclass",
        "binary",
        "nine_class",
    }


# ------------------------------------------------------------------ network


def test_network_shapes_and_imu_only_batch():
    net = CMINetwork(TINY).eval()
    out = net(make_batch(imu_only=True))
    assert (
        out["multiclass"].shape == (6, 18)
        and out["binary"].shape == (6,)
        and out["nine_class"].shape == (6, 9)
    )
    assert all(torch.isfinite(v).all() for v in out.values())
    assert "nine_class" not in CMINetwork(TINY, nine_class_head=False)(make_batch())


def test_absent_sensor_contributes_nothing():
    net = CMINetwork(TINY).eval()
    a, b = make_batch(imu_only=True), make_batch(imu_only=True)
    b["tof"] = torch.randn_like(b["tof"]) * 100  # garbage where the sensor is flagged absent
    b["thm"] = torch.randn_like(b["thm"]) * 100
    with torch.no_grad():
        assert torch.equal(net(a)["multiclass"], net(b)["multiclass"])


def test_padding_does_not_change_real_steps():
    net = CMINetwork(TINY).eval()
    batch = make_batch()
    longer = {k: v for k, v in batch.items()}
    for k in ("imu", "thm", "tof", "present"):
        longer[k] = torch.cat([v := batch[k], torch.randn(v.shape[0], 5, v.shape[2])], 1)
    longer["valid"] = torch.cat([batch["valid"], torch.zeros(6, 5, dtype=torch.bool)], 1)
    with torch.no_grad():
        assert torch.allclose(net(batch)["multiclass"], net(longer)["multiclass"], atol=1e-5)


# ------------------------------------------------------------------ module


class _FakeTrainer:
    estimated_stepping_batches = 10
    max_epochs = 2


def test_optimizer_groups_and_one_step_moves_every_s():
    loss_cfg = LossConfig(auto_weighting="uncertainty", weight_lr_multiplier=0.5)
    m = CMILitModule(CMINetwork(TINY), loss_cfg, TrainConfig(lr=1e-2, weight_decay=0.05, warmup_epochs=0))
    m.trainer = _FakeTrainer()  # configure_optimizers reads the step count from the trainer
    conf = m.configure_optimizers()
    opt = conf["optimizer"]
    assert len(opt.param_groups) == 2
    net_group, w_group = opt.param_groups
    assert net_group["lr"] == pytest.approx(1e-2) and net_group["weight_decay"] == 0.05
    assert w_group["lr"] == pytest.approx(5e-3) and w_group["weight_decay"] == 0.0
    assert {id(p) for p in w_group["params"]} == {id(p) for p in m.weighting.parameters()}
    before = {k: float(v) for k, v in m.weighting.s.items()}
    _, _, total, _ = m.model_step(make_batch())
    total.backward()
    assert all(p.grad is not None and float(p.grad) != 0 for p in m.weighting.s.values())
    opt.step()
    assert all(float(m.weighting.s[k]) != before[k] for k in before)


def test_public_module_name_is_the_same_class():
    assert module.CMISqueezeformer is CMILitModule


def test_fixed_module_has_a_single_group():
    m = CMILitModule(CMINetwork(TINY), LossConfig(), TrainConfig())
    m.trainer = _FakeTrainer()
    assert len(m.configure_optimizers()["optimizer"].param_groups) == 1


def test_module_projects_after_every_optimizer_step():
    loss_cfg = LossConfig(
        auto_weighting="uncertainty", weight_lr_multiplier=1e4, auto_weight_clamp=(-0.2, 0.2)
    )
    m = CMILitModule(CMINetwork(TINY), loss_cfg, TrainConfig(warmup_epochs=0))
    m.trainer = _FakeTrainer()
    opt = m.configure_optimizers()["optimizer"]  # weighting lr 20: one step leaves the clamp

    def closure():
        opt.zero_grad()
        total = m.model_step(make_batch())[2]
        total.backward()
        return total

    m.optimizer_step(0, 0, opt, closure)
    assert all(-0.2 - 1e-7 <= float(p) <= 0.2 + 1e-7 for p in m.weighting.s.values())  # float32 bounds
    assert any(abs(float(p)) == pytest.approx(0.2) for p in m.weighting.s.values())


def test_gradient_clipping_touches_only_the_network():
    m = CMILitModule(CMINetwork(TINY), LossConfig(auto_weighting="uncertainty"), TrainConfig(grad_clip=1.0))
    m.trainer = _FakeTrainer()
    opt = m.configure_optimizers()["optimizer"]
    (m.model_step(make_batch())[2] * 1e4).backward()  # a huge loss
    net = [p for p in m.network.parameters() if p.grad is not None]
    s_grads = {k: p.grad.clone() for k, p in m.weighting.s.items()}
    assert float(torch.nn.utils.get_total_norm([p.grad for p in net])) > 100
    m.configure_gradient_clipping(opt, gradient_clip_val=None, gradient_clip_algorithm=None)
    assert float(torch.nn.utils.get_total_norm([p.grad for p in net])) == pytest.approx(1.0, rel=1e-3)
    assert max(float(g.abs()) for g in s_grads.values()) > 100  # far above the clip norm ...
    for k, p in m.weighting.s.items():
        assert torch.equal(p.grad, s_grads[k])  # ... and left alone


def test_weighting_lr_is_constant_after_warmup_while_the_network_decays():
    class Trainer:
        estimated_stepping_batches = 20
        max_epochs = 4

    loss_cfg = LossConfig(auto_weighting="uncertainty", weight_lr_multiplier=2.0)
    m = CMILitModule(CMINetwork(TINY), loss_cfg, TrainConfig(lr=1e-2, warmup_epochs=1))
    m.trainer = Trainer()
    conf = m.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(20):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    net, weights = np.array(lrs).T
    warmup = 5  # 1 of 4 epochs of 20 steps
    assert np.all(np.diff(weights[: warmup + 1]) > 0) and np.all(np.diff(net[: warmup + 1]) > 0)
    np.testing.assert_allclose(weights[warmup:], 2e-2)  # the base lr × multiplier, to the last step
    assert net[warmup] == pytest.approx(1e-2) and np.all(np.diff(net[warmup:]) < 0) and net[-1] < 0.02 * 1e-2


@pytest.mark.parametrize("p", [0.05, 0.1, 0.3, 0.9])
def test_cpu_dropout_keeps_nn_dropouts_statistics_and_is_reproducible(p):
    """The network's Dropout draws cheaper masks on the CPU: the same keep rate and expectation as
    torch's nn.Dropout (each within 5 standard errors over a million elements), the same gradient
    rule, and the same masks from the same seed."""
    from cmi_model.network import Dropout

    x = torch.ones(1000, 1000, requires_grad=True)
    torch.manual_seed(3)
    ours = Dropout(p).train()(x)
    theirs = torch.nn.Dropout(p).train()(x)
    n, se = x.numel(), (p * (1 - p) / x.numel()) ** 0.5
    for out in (ours, theirs):
        assert abs((out > 0).float().mean().item() - (1 - p)) < 5 * se
        # survivors scaled so that the expectation is x: mean within 5 standard errors of 1
        assert abs(out.mean().item() - 1.0) < 5 * (p / (1 - p) / n) ** 0.5
    torch.manual_seed(3)
    assert torch.equal(Dropout(p).train()(x), ours)  # the seed gives the same masks
    ours.sum().backward()
    assert torch.equal(x.grad, ours.detach())  # d(out)/dx is the scaled mask
    assert torch.equal(Dropout(p).eval()(x), x) and torch.equal(Dropout(0.0).train()(x), x)


def test_self_attention_is_torchs_multihead_attention_with_the_networks_masks():
    """SelfAttention keeps nn.MultiheadAttention's parameters and, in training on the CPU, computes
    what it computes (padded keys masked; forward and gradient equal without masks); its attention
    weights are dropped with the network's Dropout: reproducible from the seed and, averaged over
    draws, the undropped output."""
    from cmi_model.network import SelfAttention

    torch.manual_seed(0)
    ours = SelfAttention(16, 4, 0.0)
    ref = torch.nn.MultiheadAttention(16, 4, dropout=0.0, batch_first=True)
    ref.load_state_dict(ours.state_dict())  # the same state dict: old checkpoints load either way
    x = torch.randn(3, 9, 16, requires_grad=True)
    pad = torch.zeros(3, 9, dtype=torch.bool)
    pad[1, 5:], pad[2, 2:] = True, True
    ours.train().dropout = 0.2  # takes the written-out path ...
    ours.weight_dropout.p = 0.0  # ... with no masks drawn
    mine, _ = ours(x, x, x, key_padding_mask=pad, need_weights=False)
    theirs, _ = ref.train()(x, x, x, key_padding_mask=pad, need_weights=False)
    torch.testing.assert_close(mine, theirs)
    grads = [torch.autograd.grad(out.sum(), x)[0] for out in (mine, theirs)]
    torch.testing.assert_close(*grads)

    ours.weight_dropout.p = 0.2
    torch.manual_seed(5)
    first, _ = ours(x, x, x, key_padding_mask=pad, need_weights=False)
    torch.manual_seed(5)
    again, _ = ours(x, x, x, key_padding_mask=pad, need_weights=False)
    assert torch.equal(first, again) and not torch.allclose(first, theirs)
    with torch.no_grad():
        mean = sum(ours(x, x, x, key_padding_mask=pad, need_weights=False)[0] for _ in range(3000)) / 3000
    torch.testing.assert_close(mean, theirs.detach(), atol=0.03, rtol=0)


@pytest.mark.parametrize(("channels", "kernel"), [(8, 7), (16, 31)])
def test_conv_module_computes_its_conv1d_layers_without_transposes(channels, kernel):
    """ConvModule runs its pointwise convolutions as linear maps and its depthwise one as a conv2d of
    height 1 (faster on the CPU), on the Conv1d parameters: forward and gradients equal to the
    Conv1d layers applied as such."""
    from cmi_model.network import ConvModule

    torch.manual_seed(0)
    m = ConvModule(channels, kernel, dropout=0.0).train()
    x = torch.randn(3, 40, channels, requires_grad=True)
    valid = torch.ones(3, 40)
    valid[1, 30:] = 0

    def as_conv1d(x):
        h = m.pointwise_in(m.norm_in(x).transpose(1, 2))
        h = torch.nn.functional.glu(h, dim=1) * valid[:, None, :]
        h = torch.nn.functional.silu(m.norm_mid(m.depthwise(h).transpose(1, 2)))
        return m.pointwise_out(h.transpose(1, 2)).transpose(1, 2)

    ours, theirs = m(x, valid), as_conv1d(x)
    torch.testing.assert_close(ours, theirs)
    params = [x, *m.parameters()]
    for mine, ref in zip(
        torch.autograd.grad(ours.square().sum(), params),
        torch.autograd.grad(theirs.square().sum(), params),
        strict=True,
    ):
        torch.testing.assert_close(mine, ref)
