"""The gradient-level arms (cmi_model/weighting/_jacobian.py and one file each) against TorchJD and by hand.

A toy two-layer network with the project's heads and loss terms: the encoder's gradient is
TorchJD's aggregator applied to the Jacobian computed here term by term with torch.autograd,
each head's gradient is the plain sum of its own terms' gradients (no aggregator, no weight),
and in the LightningModule the step's weights are recorded, gradient clipping holds, and bf16
autocast trains.
"""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torchjd import aggregation as agg

from cmi_model.config import MODEL_PRESETS, LossConfig, TrainConfig
from cmi_model.dataset import example_batch
from cmi_model.labels import GESTURES, NINE_CLASSES
from cmi_model.losses import loss_terms
from cmi_model.module import CMILitModule
from cmi_model.network import CMINetwork
from cmi_model.weighting import SCHEMES, build_weighting

GRADIENT_ARMS = tuple(arm for arm, cls in SCHEMES.items() if cls.family == "gradient-level")
TERMS = ("multiclass", "binary", "nine_class", "kl")

pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec.*is deprecated")  # Lightning 2.6 on torch 2.13


# A fresh TorchJD aggregator per arm, as its paper's defaults (and cfg's knobs) say: the oracle an
# arm's encoder gradient is checked against (an arm without one gets the checks that hold for all).
REFERENCES = {
    "upgrad": lambda cfg: agg.UPGrad(),
    "mgda": lambda cfg: agg.MGDA(),
    "pcgrad": lambda cfg: agg.PCGrad(),
    "imtl_g": lambda cfg: agg.IMTLG(),
    "aligned_mtl": lambda cfg: agg.AlignedMTL(),
    "cagrad": lambda cfg: agg.CAGrad(c=cfg.cagrad_c),
    "nash_mtl": lambda cfg: agg.NashMTL(n_tasks=len(cfg.active_terms())),
}


class Toy(nn.Module):
    """Two shared layers, then the project's three heads on the features."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 5), nn.Tanh())
        self.head_multiclass = nn.Linear(5, len(GESTURES))
        self.head_binary = nn.Linear(5, 1)
        self.head_nine_class = nn.Linear(5, len(NINE_CLASSES))

    def forward(self, x):
        f = self.encoder(x)
        out = {"multiclass": self.head_multiclass(f), "binary": self.head_binary(f).squeeze(-1)}
        return out | {"nine_class": self.head_nine_class(f), "features": f}


def toy_step(seed: int = 0):
    torch.manual_seed(seed)
    net = Toy()
    x = torch.randn(16, 6)
    y18 = torch.randint(0, len(GESTURES), (16,))
    batch = {"y18": y18, "ybin": (y18 < 8).long(), "y9": torch.randint(0, len(NINE_CLASSES), (16,))}
    return net, x, batch


def test_every_gradient_arm_is_registered_with_its_paper():
    assert set(REFERENCES) <= set(GRADIENT_ARMS)
    assert all(SCHEMES[a].paper and not SCHEMES[a].learned for a in GRADIENT_ARMS)


@pytest.mark.parametrize("arm", GRADIENT_ARMS)
def test_the_encoder_gets_the_aggregated_jacobian_and_each_head_its_own_terms(arm):
    cfg = LossConfig(auto_weighting=arm, kl_weight=0.3)
    net, x, batch = toy_step()
    out = net(x)
    terms = loss_terms(out, batch, cfg)
    assert tuple(terms) == TERMS
    encoder = list(net.encoder.parameters())
    # The Jacobian by hand: one row per term, the encoder's parameters flattened and concatenated.
    rows = [torch.autograd.grad(terms[t], encoder, retain_graph=True) for t in TERMS]
    jacobian = torch.stack([torch.cat([g.flatten() for g in row]) for row in rows])
    heads = {
        "head_multiclass": ("multiclass", "kl"),  # the KL term compares the 18- and 9-class heads
        "head_binary": ("binary",),
        "head_nine_class": ("nine_class", "kl"),
    }
    by_hand = {}
    for head, its_terms in heads.items():
        params = list(getattr(net, head).parameters())
        grads = [torch.autograd.grad(terms[t], params, retain_graph=True) for t in its_terms]
        by_hand[head] = [sum(g) for g in zip(*grads, strict=True)]
    torch.manual_seed(1)  # PCGrad's random order: the same draws for both
    expected = REFERENCES[arm](cfg)(jacobian) if arm in REFERENCES else None

    torch.manual_seed(1)
    weighting = build_weighting(cfg)
    total, _ = weighting(terms)
    weights = weighting.backward(total, terms, out["features"], net.parameters())

    got = torch.cat([p.grad.flatten() for p in encoder])
    if expected is not None:
        assert torch.allclose(got, expected, atol=1e-6, rtol=1e-6), (got - expected).abs().max()
    # The weights it returns combine the Jacobian's rows into that gradient.
    w = torch.stack([weights[t] for t in TERMS])
    assert torch.allclose(w @ jacobian, got, atol=1e-6, rtol=1e-5)
    for head, expected_grads in by_hand.items():
        for p, g in zip(getattr(net, head).parameters(), expected_grads, strict=True):
            assert torch.allclose(p.grad, g, atol=1e-7), head
    # Evaluation (and the logged total) uses the last step's weights, changing nothing.
    weighting.eval()
    with torch.no_grad():
        eval_total, eval_weights = weighting({t: v.detach() for t, v in terms.items()})
    assert eval_weights == {t: weights[t] for t in TERMS}
    assert float(eval_total) == pytest.approx(float(sum(weights[t] * terms[t] for t in TERMS)), rel=1e-6)


def test_absent_terms_are_absent_for_the_aggregator_too():
    cfg = LossConfig(auto_weighting="upgrad", nine_class_head_enabled=False)
    net, x, batch = toy_step()
    out = net(x)
    terms = loss_terms(out, batch, cfg)
    weighting = build_weighting(cfg)
    total, _ = weighting(terms)
    weights = weighting.backward(total, terms, out["features"], net.parameters())
    assert set(weights) == {"multiclass", "binary"}
    assert net.head_nine_class.weight.grad is None  # no 9-class term: its head is not in any graph


def test_a_network_without_features_is_told_what_is_missing():
    cfg = LossConfig(auto_weighting="mgda")
    net, x, batch = toy_step()
    out = net(x)
    terms = loss_terms(out, batch, cfg)
    weighting = build_weighting(cfg)
    total, _ = weighting(terms)
    with pytest.raises(ValueError, match="mgda needs the network's 'features' output"):
        weighting.backward(total, terms, None, net.parameters())


class ClipWatch(CMILitModule):
    """Records the network's gradient norm right after the module clipped it."""

    norms: list[float]

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
        grads = [p.grad for p in self.network.parameters() if p.grad is not None]
        self.norms = [
            *getattr(self, "norms", []),
            float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))),
        ]


def _fit(module: CMILitModule, precision: str = "32-true", epochs: int = 2) -> CMILitModule:
    batches = [example_batch(8, 16, seed=i) for i in range(3)]
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        precision=precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, torch.utils.data.DataLoader(batches, batch_size=None))
    return module


@pytest.mark.parametrize("arm", ["upgrad", "nash_mtl"])
def test_in_the_module_clipping_holds_and_the_steps_weights_are_recorded(arm):
    torch.manual_seed(0)
    cfg = LossConfig(auto_weighting=arm)
    m = _fit(ClipWatch(CMINetwork(MODEL_PRESETS["tiny"]), cfg, TrainConfig(grad_clip=1e-3, warmup_epochs=0)))
    assert len(m.norms) == 6 and max(m.norms) <= 1e-3 * (1 + 1e-4)
    assert len(m.weight_history) == 2 and all(set(h) == set(TERMS) for h in m.weight_history)
    # The recorded weights are the aggregator's (the mean of the epoch's steps), not the 1s that
    # forward starts from.
    assert all(math.isfinite(v) for h in m.weight_history for v in h.values())
    assert any(abs(v - 1.0) > 1e-3 for h in m.weight_history for v in h.values())
    assert m._step is None  # nothing of the last step's graph is kept


def test_a_gradient_arm_trains_under_bf16_autocast():
    torch.manual_seed(0)
    cfg = LossConfig(auto_weighting="imtl_g")
    network = CMINetwork(MODEL_PRESETS["tiny"])
    before = {k: v.clone() for k, v in network.state_dict().items()}
    m = _fit(CMILitModule(network, cfg, TrainConfig(warmup_epochs=0)), precision="bf16-mixed", epochs=1)
    assert all(p.dtype == torch.float32 for p in network.parameters())  # fp32 master weights
    moved = [k for k, v in network.state_dict().items() if not torch.equal(v, before[k])]
    assert moved and all(math.isfinite(v) for h in m.weight_history for v in h.values())
