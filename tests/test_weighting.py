"""The published loss-weighting schemes against TorchJD's own scalarizers, and their lifecycle in the module.

Each strategy of cmi_model.weighting that wraps a TorchJD scalarizer is checked against a
reference scalarizer fed the same hand-built losses; the effective weights it returns are
∂total/∂L_i. Then, in the LightningModule: FAMO's extra forward (once per step, no gradient,
no running state, the same dropout masks) and DWA's roll (once per training epoch, however
many validation passes).
"""

from __future__ import annotations

import datetime
import math
import re

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchjd import scalarization as tjd

from cmi_model import weighting as wmod
from cmi_model.config import MODEL_PRESETS, DataConfig, LossConfig, ModelConfig, TrainConfig
from cmi_model.dataset import example_batch
from cmi_model.module import CMILitModule
from cmi_model.network import CMINetwork
from cmi_model.train import fit_fold, quiet_lightning
from cmi_model.weighting import build_weighting
from cmi_model.weighting.dwa import DWAWeighting
from cmi_model.weighting.equal import EqualWeighting
from cmi_model.weighting.famo import FAMOWeighting
from cmi_model.weighting.imtl_l import IMTLLWeighting
from cmi_model.weighting.rlw import RandomWeighting
from cmi_model.weighting.uncertainty import UncertaintyWeighting

pytestmark = [
    pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad=True to a scalar"),
    pytest.mark.filterwarnings("ignore:.*LeafSpec.*is deprecated"),  # Lightning 2.6 on torch 2.13
]

TERMS = ("multiclass", "binary", "nine_class", "kl")
TINY = ModelConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32, kernel_size=5, dropout=0.0)
# The published loss-level schemes (the fixed, uncertainty and direct weights, written by hand, have
# tests of their own in test_model.py): a new one is checked here as it is added.
NEW = tuple(
    arm
    for arm, cls in wmod.SCHEMES.items()
    if cls.family != "gradient-level" and arm not in ("fixed", "uncertainty", "direct")
)
# The configs that switch terms off: KL weight 0 (no KL term), no 9-class head (no 9-class CE, no KL).
VARIANTS = {
    "all": ({}, TERMS),
    "no_kl": ({"kl_weight": 0.0}, TERMS[:3]),
    "no_nine": ({"nine_class_head_enabled": False}, TERMS[:2]),
}


def losses(values, terms=TERMS, grad: bool = True) -> dict[str, torch.Tensor]:
    """Hand-built losses; with grad=True leaves that carry a gradient, as a training step's do."""
    return {t: torch.tensor(float(v), requires_grad=grad) for t, v in zip(terms, values, strict=False)}


def vector(d: dict[str, torch.Tensor], terms=TERMS) -> torch.Tensor:
    return torch.stack([d[t].detach() for t in terms])


def autograd_weights(total: torch.Tensor, ls: dict[str, torch.Tensor]) -> dict[str, float]:
    grads = torch.autograd.grad(total, list(ls.values()), retain_graph=True)
    return {t: float(g) for t, g in zip(ls, grads, strict=True)}


def floats(w: dict[str, torch.Tensor]) -> dict[str, float]:
    return {k: float(v) for k, v in w.items()}


# ----------------------------------------------------------------------------- registry


def test_every_published_scheme_cites_its_paper_with_its_year():
    this_year = datetime.date.today().year
    for arm, cls in wmod.SCHEMES.items():
        w = build_weighting(LossConfig(auto_weighting=arm))
        assert w.arm == arm and isinstance(w, wmod.Weighting) and cls.label and cls.paper and cls.color
        # "Liu, Johns & Davison (2019)", ...; the schemes set by hand or by the baseline's formula cite none.
        if arm not in ("fixed", "equal", "direct"):
            years = [int(y) for y in re.findall(r"\((\d{4})\)", cls.__doc__ or "")]
            assert years and all(2000 <= y <= this_year for y in years), arm


# ----------------------------------------------------------------------------- equal


@pytest.mark.parametrize("variant", VARIANTS)
def test_equal_is_the_plain_sum_with_weight_one(variant):
    kwargs, terms = VARIANTS[variant]
    w = EqualWeighting(LossConfig(auto_weighting="equal", **kwargs))
    ls = losses([2.0, 0.7, 1.5, 0.3], terms)
    total, weights = w(ls)
    assert float(total) == pytest.approx(float(tjd.Sum()(vector(ls, terms))))
    assert floats(weights) == dict.fromkeys(terms, 1.0) == autograd_weights(total, ls)
    assert list(w.parameters()) == [] and w.logged_params() == {}


# ----------------------------------------------------------------------------- DWA


# Mean loss of each epoch (every batch of an epoch gets one of these, times a per-batch factor).
EPOCHS = [[2.0, 0.7, 1.5, 0.30], [1.6, 0.65, 1.2, 0.33], [1.1, 0.62, 1.0, 0.20]]
BATCH_FACTORS = (0.9, 1.1, 1.0)


def dwa_formula(older, newer, temperature: float) -> list[float]:
    """λ_k = K·softmax(r/T), r_k = L̄_k(t−1)/L̄_k(t−2): the paper's equation (1)."""
    r = [n / o for n, o in zip(newer, older, strict=True)]
    e = [math.exp(x / temperature) for x in r]
    return [len(r) * x / sum(e) for x in e]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("temperature", [2.0, 0.5])
def test_dwa_matches_torchjd_after_one_two_and_three_epochs(variant, temperature):
    kwargs, terms = VARIANTS[variant]
    k = len(terms)
    ours = DWAWeighting(LossConfig(auto_weighting="dwa", dwa_temperature=temperature, **kwargs))
    ref = tjd.DWA(temperature=temperature)
    for epoch, means in enumerate([*EPOCHS, EPOCHS[-1]]):
        for f in BATCH_FACTORS:
            ls = losses([m * f for m in means[:k]], terms)
            total, weights = ours(ls)
            v = vector(ls, terms).requires_grad_()
            expected_total = ref(v)
            (expected,) = torch.autograd.grad(expected_total, v)
            assert float(total) == pytest.approx(float(expected_total), rel=1e-6)
            # effective weights = ∂total/∂L_i = TorchJD's λ
            assert list(floats(weights).values()) == pytest.approx(expected.tolist(), rel=1e-6)
            assert floats(weights) == pytest.approx(autograd_weights(total, ls), rel=1e-6)
            if epoch < 2:  # no two epoch averages yet: uniform
                assert list(floats(weights).values()) == pytest.approx([1.0] * k)
            else:  # the batches' factors average out: the epoch means are EPOCHS[epoch - 2 : epoch]
                older, newer = (e[:k] for e in EPOCHS[epoch - 2 : epoch])
                assert list(floats(weights).values()) == pytest.approx(dwa_formula(older, newer, temperature))
                assert sum(floats(weights).values()) == pytest.approx(k)  # TorchJD's and the paper's Σλ = K
        ours.on_train_epoch_end()
        ref.step()
    # The last-used weights are its logged log-weights, and it learned something.
    assert set(ours.logged_params()) == {f"log_w_{t}" for t in terms}
    assert max(abs(v) for v in ours.logged_params().values()) > 0


def test_dwa_evaluation_neither_feeds_nor_rolls_the_epoch_average():
    cfg = LossConfig(auto_weighting="dwa")
    a, b = DWAWeighting(cfg), DWAWeighting(cfg)
    for means in EPOCHS:
        for f in BATCH_FACTORS:
            ta, wa = a(losses([m * f for m in means]))
            tb, wb = b(losses([m * f for m in means]))
            # b also evaluates, in eval mode and without gradient, other (larger) losses in between
            b.eval()
            total_eval, w_eval = b(losses([10.0, 10.0, 10.0, 10.0]))
            assert floats(w_eval) == floats(wb)  # the weights of its last training step
            assert float(total_eval) == pytest.approx(sum(10.0 * float(v) for v in wb.values()))
            b.train()
            with torch.no_grad():
                b(losses([9.0, 9.0, 9.0, 9.0], grad=False))
            assert floats(wa) == floats(wb)
        a.on_train_epoch_end()
        b.on_train_epoch_end()
    assert floats(a(losses(EPOCHS[0]))[1]) == floats(b(losses(EPOCHS[0]))[1])


# ----------------------------------------------------------------------------- FAMO


def toy_losses(model: nn.Module, x: torch.Tensor, terms=TERMS) -> dict[str, torch.Tensor]:
    """One positive loss per term from a toy linear model (squared outputs, offset by term)."""
    out = model(x).pow(2).mean(0) + torch.arange(1, len(terms) + 1) * 0.05
    return dict(zip(terms, out.unbind(), strict=True))


@pytest.mark.parametrize("variant", VARIANTS)
def test_famo_matches_torchjd_over_a_few_steps_of_a_toy_model(variant):
    """TorchJD's FAMO over the tasks; the KL term, when active, at its fixed kl_weight."""
    kwargs, terms = VARIANTS[variant]
    tasks = tuple(t for t in terms if t != "kl")
    k = len(terms)
    torch.manual_seed(0)
    model_a = nn.Linear(3, k)
    model_b = nn.Linear(3, k)
    model_b.load_state_dict(model_a.state_dict())
    ours = FAMOWeighting(LossConfig(auto_weighting="famo", famo_lr=0.05, **kwargs))
    kl_weight = LossConfig(**kwargs).kl_weight
    ref = tjd.FAMO(len(tasks), lr=0.05, weight_decay=1e-3)
    assert ours.optimized_parameters() == []  # its own Adam steps the logits, never the module's optimizer
    opt_a, opt_b = (torch.optim.SGD(m.parameters(), lr=0.1) for m in (model_a, model_b))
    x = torch.randn(16, 3)

    def ref_total(model):
        ls = toy_losses(model, x, terms)
        kl = kl_weight * ls["kl"] if "kl" in ls else 0.0
        return ref(torch.stack([ls[t] for t in tasks])) + kl

    for _ in range(5):
        ls = toy_losses(model_a, x, terms)
        total, weights = ours(ls)
        expected_total = ref_total(model_b)
        assert float(total) == pytest.approx(float(expected_total), rel=1e-6)
        # ∂total/∂L_i = z_i/L_i normalised over the tasks (TorchJD's c held constant), by autograd;
        # the KL term's is its fixed weight.
        (logits,) = ref.parameters()
        z = torch.softmax(logits.detach(), 0)
        by_formula = (z / vector(ls, tasks)) / (z / vector(ls, tasks)).sum()
        got = floats(weights)
        assert [got[t] for t in tasks] == pytest.approx(by_formula.tolist(), rel=1e-5)
        assert sum(got[t] for t in tasks) == pytest.approx(1.0)
        if "kl" in terms:
            assert got["kl"] == pytest.approx(kl_weight)
        for opt, t in ((opt_a, total), (opt_b, expected_total)):
            opt.zero_grad()
            t.backward()
            opt.step()
        with torch.no_grad():
            ours.after_optimizer_step(lambda m=model_a: toy_losses(m, x, terms))
            ref.update(torch.stack([toy_losses(model_b, x, terms)[t] for t in tasks]))
        assert list(ours.logged_params().values()) == pytest.approx(logits.detach().tolist(), abs=1e-7)
    assert max(abs(v) for v in ours.logged_params().values()) > 0  # the logits moved
    assert set(ours.logged_params()) == {f"logit_{t}" for t in tasks}


def test_famo_keeps_a_vanishing_kl_term_at_its_fixed_weight():
    """Balanced, the KL term's weight ∝ 1/KL would take nearly all of it as the heads agree."""
    ours = FAMOWeighting(LossConfig(auto_weighting="famo", kl_weight=0.1))
    _, weights = ours(losses([2.0, 0.7, 1.5, 1e-4]))
    got = floats(weights)
    assert got["kl"] == pytest.approx(0.1)
    assert got["multiclass"] + got["binary"] + got["nine_class"] == pytest.approx(1.0)
    balanced = tjd.FAMO(4)  # the rule that balanced KL too: ~100% of the weight on it
    v = torch.tensor([2.0, 0.7, 1.5, 1e-4], requires_grad=True)
    (grad,) = torch.autograd.grad(balanced(v), v)
    assert float(grad[3]) > 0.99


def test_famo_update_needs_only_the_recomputed_losses_once():
    ours = FAMOWeighting(LossConfig(auto_weighting="famo"))
    ours(losses([2.0, 0.7, 1.5, 0.3]))
    calls = []

    def recompute():
        calls.append(1)
        return losses([1.9, 0.7, 1.4, 0.3], grad=False)

    ours.after_optimizer_step(recompute)
    assert len(calls) == 1


# ----------------------------------------------------------------------------- IMTL-L


@pytest.mark.parametrize("variant", VARIANTS)
def test_imtl_l_value_and_gradients_match_torchjd(variant):
    kwargs, terms = VARIANTS[variant]
    k = len(terms)
    ours = IMTLLWeighting(LossConfig(auto_weighting="imtl_l", **kwargs))
    ref = tjd.IMTLL(k)
    s = torch.linspace(-0.4, 0.6, k)
    with torch.no_grad():
        ours.scalarizer.log_scale.copy_(s)
        ref.log_scale.copy_(s)
    ls = losses([2.0, 0.7, 1.5, 0.3][:k], terms)
    total, weights = ours(ls)
    v = vector(ls, terms).requires_grad_()
    expected = ref(v)
    by_hand = sum(math.exp(float(si)) * float(ls[t]) - float(si) for si, t in zip(s, terms, strict=True))
    assert float(total) == pytest.approx(float(expected)) == pytest.approx(by_hand)
    # effective weights: exp(s_i), TorchJD's formula, equal to ∂total/∂L_i
    assert list(floats(weights).values()) == pytest.approx(torch.exp(s).tolist())
    assert floats(weights) == pytest.approx(autograd_weights(total, ls))
    # gradients of the learned scales: ∂/∂s_i (e^{s_i} L_i − s_i) = e^{s_i} L_i − 1, as TorchJD's
    total.backward()
    expected.backward()
    assert ours.scalarizer.log_scale.grad.tolist() == pytest.approx(ref.log_scale.grad.tolist())
    assert ours.scalarizer.log_scale.grad.tolist() == pytest.approx(
        [math.exp(float(si)) * float(ls[t]) - 1 for si, t in zip(s, terms, strict=True)], rel=1e-5
    )
    assert set(ours.logged_params()) == {f"s_{t}" for t in terms}


def test_imtl_l_scales_train_in_the_weighting_group_and_stay_in_the_clamp():
    cfg = LossConfig(auto_weighting="imtl_l", auto_weight_clamp=(-0.5, 0.5), weight_lr_multiplier=3.0)
    w = IMTLLWeighting(cfg)
    assert [id(p) for p in w.optimized_parameters()] == [id(w.scalarizer.log_scale)]
    opt = torch.optim.SGD(w.parameters(), lr=100.0)  # far beyond the clamp in one step
    opt.zero_grad()
    w(losses([2.0, 0.7, 1.5, 0.3]))[0].backward()
    opt.step()
    assert any(abs(float(v)) > 0.5 for v in w.scalarizer.log_scale)
    w.project()
    assert all(-0.5 <= float(v) <= 0.5 for v in w.scalarizer.log_scale)
    # in the module: the weighting param group, lr × the multiplier
    m = CMILitModule(CMINetwork(TINY), cfg, TrainConfig(lr=1e-2, warmup_epochs=0))
    m.trainer = FakeTrainer()
    groups = m.configure_optimizers()["optimizer"].param_groups
    assert len(groups) == 2 and groups[1]["lr"] == pytest.approx(3e-2) and groups[1]["weight_decay"] == 0.0
    assert [id(p) for p in groups[1]["params"]] == [id(m.weighting.scalarizer.log_scale)]


def test_imtl_l_and_uncertainty_are_the_same_loss_under_s_to_minus_s():
    """TorchJD documents IMTL-L = 2·UW at the negated parameter; ours has no ½, so it equals
    uncertainty weighting exactly: Σ e^{s}L − s at s = −σ is Σ e^{−σ}L + σ."""
    u = UncertaintyWeighting(LossConfig(auto_weighting="uncertainty"))
    i = IMTLLWeighting(LossConfig(auto_weighting="imtl_l"))
    sigma = torch.tensor([0.3, -0.2, 0.5, 0.1])
    with torch.no_grad():
        for t, v in zip(TERMS, sigma, strict=True):
            u.s[t].fill_(float(v))  # by name: a ParameterDict built from a dict sorts its keys
        i.scalarizer.log_scale.copy_(-sigma)
    ls = losses([2.0, 0.7, 1.5, 0.3])
    assert float(u(ls)[0]) == pytest.approx(float(i(ls)[0]))
    assert floats(u(ls)[1]) == pytest.approx(floats(i(ls)[1]))


# ----------------------------------------------------------------------------- random weights (RLW)


@pytest.mark.parametrize("variant", VARIANTS)
def test_rlw_weights_are_fresh_positive_and_sum_to_one(variant):
    kwargs, terms = VARIANTS[variant]
    k = len(terms)
    w = RandomWeighting(LossConfig(auto_weighting="rlw", **kwargs))
    seen = []
    for _ in range(4):
        ls = losses([2.0, 0.7, 1.5, 0.3][:k], terms)
        total, weights = w(ls)
        vals = list(floats(weights).values())
        assert all(v > 0 for v in vals) and sum(vals) == pytest.approx(1.0)  # TorchJD's convention: Σλ = 1
        assert float(total) == pytest.approx(sum(v * float(ls[t]) for v, t in zip(vals, terms, strict=True)))
        assert floats(weights) == pytest.approx(autograd_weights(total, ls))
        seen.append(tuple(vals))
    assert len(set(seen)) == 4  # fresh weights every step
    # the same draws as TorchJD's Random from the same generator state
    torch.manual_seed(7)
    _, weights = w(losses([2.0, 0.7, 1.5, 0.3][:k], terms))
    torch.manual_seed(7)
    v = vector(losses([2.0, 0.7, 1.5, 0.3][:k], terms), terms).requires_grad_()
    (expected,) = torch.autograd.grad(tjd.Random()(v), v)
    assert list(floats(weights).values()) == pytest.approx(expected.tolist())
    # evaluation: the expectation 1/K, and no random number drawn
    w.eval()
    state = torch.get_rng_state()
    total, weights = w(losses([2.0, 0.7, 1.5, 0.3][:k], terms, grad=False))
    assert torch.equal(state, torch.get_rng_state())
    assert list(floats(weights).values()) == pytest.approx([1 / k] * k)
    assert w.logged_params() == {} and list(w.parameters()) == []


# ----------------------------------------------------------------------------- the project's uncertainty vs UW


def test_uncertainty_is_twice_torchjd_uw_with_the_same_optimum():
    """Ours: Σ exp(−s)·L + s. TorchJD's UW: Σ ½·exp(−s)·L + ½·s. Equal up to the factor ½, so the
    same stationary point s* = log L for both."""
    ours = UncertaintyWeighting(LossConfig(auto_weighting="uncertainty", auto_weight_clamp=(-20.0, 20.0)))
    ref = tjd.UW(4)
    s = torch.tensor([0.4, -0.3, 0.1, -1.0])
    with torch.no_grad():
        for t, v in zip(TERMS, s, strict=True):
            ours.s[t].fill_(float(v))
        ref.log_var.copy_(s)
    ls = losses([2.0, 0.7, 1.5, 0.3])
    total, weights = ours(ls)
    v = vector(ls).requires_grad_()
    expected = ref(v)
    assert float(total) == pytest.approx(2 * float(expected))
    (g,) = torch.autograd.grad(expected, v, retain_graph=True)
    assert list(floats(weights).values()) == pytest.approx((2 * g).tolist())  # exp(−s) = 2·½·exp(−s)
    total.backward()
    expected.backward()
    assert [float(ours.s[t].grad) for t in TERMS] == pytest.approx((2 * ref.log_var.grad).tolist())
    # both converge to s* = log L
    opt = torch.optim.SGD([*ours.parameters(), *ref.parameters()], lr=0.2)
    fixed = {t: x.detach() for t, x in ls.items()}
    for _ in range(2000):
        opt.zero_grad()
        (ours(fixed)[0] + ref(vector(fixed))).backward()
        opt.step()
    log_l = [math.log(float(fixed[t])) for t in TERMS]
    assert [float(ours.s[t]) for t in TERMS] == pytest.approx(log_l, abs=1e-3)
    assert ref.log_var.tolist() == pytest.approx(log_l, abs=1e-3)


# ----------------------------------------------------------------------------- terms that are absent


@pytest.mark.parametrize("arm", NEW)
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_new_arm_weights_exactly_the_active_terms(arm, variant):
    kwargs, terms = VARIANTS[variant]
    cfg = LossConfig(auto_weighting=arm, **kwargs)
    assert cfg.active_terms() == terms
    w = build_weighting(cfg)
    total, weights = w(losses([2.0, 0.7, 1.5, 0.3][: len(terms)], terms))
    assert tuple(weights) == terms and math.isfinite(float(total))
    balanced = tuple(t for t in terms if t != "kl") if arm == "famo" else terms  # FAMO: KL fixed
    for p in w.parameters():
        assert p.numel() == len(balanced)  # one learned scale or logit per (balanced) active term
    with pytest.raises(ValueError, match="weights the terms"):
        w(losses([2.0, 0.7, 1.5, 0.3], TERMS if len(terms) < 4 else TERMS[:3]))


@pytest.mark.parametrize("arm", NEW)
def test_every_new_arm_trains_in_the_module_with_the_head_off(arm):
    """One real training step of each arm without the 9-class head (so no KL either)."""
    cfg = LossConfig(auto_weighting=arm, nine_class_head_enabled=False)
    m = CMILitModule(CMINetwork(TINY, nine_class_head=False), cfg, TrainConfig())
    trainer(max_epochs=1).fit(m, loader(2))
    assert [set(h) for h in m.weight_history] == [{"multiclass", "binary"}]


# ----------------------------------------------------------------------------- in the LightningModule


class FakeTrainer:
    estimated_stepping_batches = 10
    max_epochs = 2


def loader(n: int, batch: int = 8, t: int = 16) -> DataLoader:
    # batch_size=None: the DataLoader hands over the pre-built batches as they are.
    return DataLoader([example_batch(batch, t, seed=i) for i in range(n)], batch_size=None)


def trainer(**kwargs) -> pl.Trainer:
    quiet_lightning()
    return pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **kwargs,
    )


class CountForwards(nn.Module):
    """The network, counting its forwards with the grad and training mode of each."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.calls: list[tuple[bool, bool]] = []

    def forward(self, batch):
        self.calls.append((torch.is_grad_enabled(), self.training))
        return self.net(batch)


@pytest.mark.parametrize(("arm", "per_step"), [("famo", 2), ("fixed", 1), ("dwa", 1)])
def test_famo_recomputes_the_losses_once_per_step_without_gradient(arm, per_step):
    net = CountForwards(CMINetwork(TINY))
    m = CMILitModule(net, LossConfig(auto_weighting=arm), TrainConfig(warmup_epochs=0))
    n_batches, epochs = 3, 2
    trainer(max_epochs=epochs).fit(m, loader(n_batches))
    steps = n_batches * epochs
    assert len(net.calls) == per_step * steps
    if arm == "famo":
        # each step: the training forward (with gradient), then the recomputation (without), both in train mode
        assert net.calls == [(True, True), (False, True)] * steps
        assert max(abs(v) for v in m.weighting.logged_params().values()) > 0  # FAMO's logits were updated


def test_famo_recomputation_touches_no_gradient_parameter_or_random_state():
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32, kernel_size=5, dropout=0.3)
    m = CMILitModule(CMINetwork(cfg), LossConfig(auto_weighting="famo"), TrainConfig())
    m.trainer = FakeTrainer()
    seen = []  # the loss terms the weighting got at the training step
    m.weighting.register_forward_hook(lambda mod, args, out: seen.append(args[0]))
    total = m.training_step(example_batch(8, 16, seed=1), 0)
    total.backward()
    grads = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
    state = {k: v.clone() for k, v in m.state_dict().items()}
    rng = torch.get_rng_state()
    again = m.recompute_losses()
    assert {n: p.grad for n, p in m.named_parameters() if p.grad is not None}.keys() == grads.keys()
    assert all(torch.equal(p.grad, grads[n]) for n, p in m.named_parameters() if p.grad is not None)
    assert all(torch.equal(v, state[k]) for k, v in m.state_dict().items())
    assert torch.equal(rng, torch.get_rng_state())  # the global random stream is left as it was
    assert all(not v.requires_grad for v in again.values())
    # no optimizer step in between: the same batch and the same dropout masks give the step's own losses
    (step_terms,) = seen
    assert all(torch.equal(again[t], step_terms[t].detach()) for t in TERMS)


class WithBatchNorm(nn.Module):
    """CMINetwork has no running statistics; this one does (a BatchNorm on the pooled logits)."""

    def __init__(self):
        super().__init__()
        self.net = CMINetwork(TINY)
        self.bn = nn.BatchNorm1d(18)

    def forward(self, batch):
        out = dict(self.net(batch))
        out["multiclass"] = self.bn(out["multiclass"])
        return out


def test_famo_recomputation_leaves_running_statistics_alone():
    m = CMILitModule(WithBatchNorm(), LossConfig(auto_weighting="famo"), TrainConfig())
    m.trainer = FakeTrainer()
    m.train()
    m.training_step(example_batch(8, 16, seed=2), 0)
    stats = {k: v.clone() for k, v in m.network.bn.state_dict().items()}
    m.recompute_losses()
    assert all(torch.equal(v, stats[k]) for k, v in m.network.bn.state_dict().items())
    assert m.network.bn.training  # back in train mode afterwards


class CountRolls:
    def __init__(self, w: DWAWeighting):
        self.n, self.real = 0, w.scalarizer.step
        w.scalarizer.step = self

    def __call__(self):
        self.n += 1
        self.real()


def test_dwa_rolls_once_per_training_epoch_with_several_validation_passes():
    m = CMILitModule(CMINetwork(TINY), LossConfig(auto_weighting="dwa"), TrainConfig(warmup_epochs=0))
    rolls = CountRolls(m.weighting)
    validations = []
    real_validation_step = m.validation_step

    def validation_step(batch, batch_idx):
        validations.append(m.current_epoch)
        return real_validation_step(batch, batch_idx)

    m.validation_step = validation_step
    n_batches, epochs = 4, 4
    # a validation pass every 2 training batches: two passes per epoch
    trainer(max_epochs=epochs, val_check_interval=2).fit(m, loader(n_batches), loader(2))
    assert rolls.n == epochs
    assert len(validations) == 2 * 2 * epochs  # 2 passes × 2 batches per epoch
    # the epochs' weights come from training losses alone: λ(t) from the mean training losses of t−1, t−2
    # (equal batch sizes: the module's per-sequence epoch means are DWA's per-batch means)
    hist, losses_ = m.weight_history, m.loss_history
    assert [list(h.values()) for h in hist[:2]] == [[1.0] * 4] * 2
    for t in (2, 3):
        older, newer = ([e[k] for k in TERMS] for e in losses_[t - 2 : t])
        assert list(hist[t].values()) == pytest.approx(dwa_formula(older, newer, 2.0), rel=1e-4)


def test_dwa_rolls_once_per_epoch_under_inner_early_stopping(tmp_path):
    from cmi_model.data import load_dir
    from cmi_model.folds import subject_folds
    from cmi_model.synthetic import generate

    generate(tmp_path, n_subjects=6, seed=5)
    data = load_dir(tmp_path, cache_dir=None)
    tr, va = subject_folds(data, 3, seed=0)[0]
    counted = {}
    real_build = wmod.build_weighting

    def build(cfg):
        w = real_build(cfg)
        counted["rolls"] = CountRolls(w)
        return w

    import cmi_model.module as module_mod

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(module_mod, "build_weighting", build)
        r = fit_fold(
            data,
            tr,
            va,
            model_cfg=MODEL_PRESETS["tiny"],
            loss_cfg=LossConfig(auto_weighting="dwa"),
            data_cfg=DataConfig(max_len=32),
            train_cfg=TrainConfig(max_epochs=3, patience=3, early_stopping="inner", inner_fraction=0.34),
        )
    assert r.rule == "inner" and r.epochs == 3 and counted["rolls"].n == 3
    assert all(len(v) == 3 for v in r.weight_trajectory.values())


def test_every_arm_records_its_effective_weights_per_epoch():
    for arm in wmod.ARMS:
        cfg = LossConfig(auto_weighting=arm)
        m = CMILitModule(CMINetwork(TINY), cfg, TrainConfig(warmup_epochs=0))
        trainer(max_epochs=3).fit(m, loader(2))
        assert len(m.weight_history) == 3 and all(set(h) == set(TERMS) for h in m.weight_history), arm
        assert all(math.isfinite(v) and v > 0 for h in m.weight_history for v in h.values()), arm
        if arm == "equal":
            assert m.weight_history == [dict.fromkeys(TERMS, 1.0)] * 3
        if arm == "rlw":  # mean over the epoch's steps of weights that sum to 1
            assert all(sum(h.values()) == pytest.approx(1.0, abs=1e-5) for h in m.weight_history), arm
        if arm == "famo":  # the tasks' sum to 1; KL keeps kl_weight
            assert all(sum(h.values()) - h["kl"] == pytest.approx(1.0, abs=1e-5) for h in m.weight_history)
            assert all(h["kl"] == pytest.approx(cfg.kl_weight) for h in m.weight_history)
