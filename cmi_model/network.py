"""Squeezeformer/Conformer-style encoder with three heads: a plain nn.Module.

Each modality has its own input projection. A projection's output is multiplied by
its sensor's presence flag, so an absent sensor (IMU-only sequences, dropped
thermopiles) contributes exactly nothing rather than a learned bias.
"""

import torch
from torch import Tensor, nn

from cmi_model.config import ModelConfig
from cmi_model.features import IMU_FEATURES
from cmi_model.labels import GESTURES, NINE_CLASSES
from cmi_model.schema import N_TOF_SENSORS, THM_COLUMNS, TOF_COLUMNS

N_THM, N_TOF = len(THM_COLUMNS), len(TOF_COLUMNS)


class Dropout(nn.Dropout):
    """nn.Dropout whose masks cost less than half on the CPU.

    torch draws a CPU dropout mask with one 32-bit random number per element (`bernoulli_`, about
    10 ns per element here, a fifth to a third of a training step). Here one draw of torch's seeded
    generator (`random_` on int32: 31 random bits, the cheapest draw it has) gives two elements a
    uniform each: the low 15 bits of each of its int16 halves (0..32767). An element is kept when its
    uniform is at or above round(p · 32768), so the keep probability is 1 − p to within 1/65536, and
    survivors are scaled by the exact inverse of it (the expectation is unchanged). One threshold
    and one scale for every element: the comparison and the products run as plain vector loops
    (per-half constants, broadcast over a trailing dimension of 2, cost more than the draw). The
    masks come from torch's generator like bernoulli_'s, so a seed gives the same training. On a
    GPU masks are nearly free and nn.Dropout's own are used.
    """

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0 or x.device.type != "cpu":
            return super().forward(x)
        n = x.numel()
        threshold = min(round(self.p * 32768), 32767)
        uniforms = (
            torch.empty((n + 1) // 2, dtype=torch.int32).random_().view(torch.int16).bitwise_and_(0x7FFF)
        )
        keep = uniforms[:n].view(x.shape) >= threshold
        return x.mul(keep).mul_(32768 / (32768 - threshold))


class SelfAttention(nn.MultiheadAttention):
    """nn.MultiheadAttention (same parameters, same state dict) whose attention-weight dropout on the
    CPU in training draws the network's cheaper masks.

    torch's own path drops the (B, heads, T, T) attention weights with `bernoulli_`, the largest
    mask of the step (T² per head against T·C per activation). Here, for self-attention without
    returned weights, the same computation is written out — softmax(q·kᵀ/√d_head) with padded keys
    masked, dropout on the weights, times v, the output projection — with :class:`Dropout`'s masks.
    Otherwise (eval, p = 0, another device, cross-attention) torch's forward runs unchanged.
    """

    def __init__(self, d: int, n_heads: int, dropout: float):
        super().__init__(d, n_heads, dropout=dropout, batch_first=True)
        self.weight_dropout = Dropout(dropout)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, **kwargs):
        own = query is key is value and not need_weights and not kwargs and self.training
        if not (own and self.dropout > 0 and query.device.type == "cpu"):
            return super().forward(
                query, key, value, key_padding_mask=key_padding_mask, need_weights=need_weights, **kwargs
            )
        b, t, c = query.shape
        qkv = nn.functional.linear(query, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.view(b, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        scores = (q * self.head_dim**-0.5) @ k.transpose(-2, -1)  # (B, heads, T, T)
        if key_padding_mask is not None:
            scores = scores.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        weights = self.weight_dropout(scores.softmax(-1))
        out = (weights @ v).transpose(1, 2).reshape(b, t, c)
        return self.out_proj(out), None


class FeedForward(nn.Module):
    def __init__(self, d: int, d_ff: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(d),
            nn.Linear(d, d_ff),
            nn.SiLU(),
            Dropout(dropout),
            nn.Linear(d_ff, d),
            Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class ConvModule(nn.Module):
    """Pointwise conv + GLU → depthwise conv → norm → SiLU → pointwise conv."""

    def __init__(self, d: int, kernel_size: int, dropout: float):
        super().__init__()
        self.norm_in = nn.LayerNorm(d)
        self.pointwise_in = nn.Conv1d(d, 2 * d, 1)
        self.depthwise = nn.Conv1d(d, d, kernel_size, padding=kernel_size // 2, groups=d)
        self.norm_mid = nn.LayerNorm(d)  # not BatchNorm: padded steps must not leak into statistics
        self.pointwise_out = nn.Conv1d(d, d, 1)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:
        # The pointwise convolutions as the matmuls they are, on (B, T, C) as it comes: their
        # parameters (and state dict) stay Conv1d's, but no activation is transposed and copied
        # around them (a fifth of the tiny model's step went to such copies).
        h = _pointwise(self.pointwise_in, self.norm_in(x))  # (B, T, 2C)
        h = nn.functional.glu(h, dim=-1)  # (B, T, C)
        h = h * valid[:, :, None]  # padding must not reach real steps through the kernel
        h = _depthwise(self.depthwise, h)  # (B, T, C)
        h = nn.functional.silu(self.norm_mid(h))
        return self.dropout(_pointwise(self.pointwise_out, h))


def _pointwise(conv: nn.Conv1d, x: Tensor) -> Tensor:
    """A kernel-1 Conv1d applied to (B, T, C_in): (B, T, C_out)."""
    return nn.functional.linear(x, conv.weight.squeeze(-1), conv.bias)


def _depthwise(conv: nn.Conv1d, x: Tensor) -> Tensor:
    """A depthwise (groups = channels) Conv1d applied to (B, T, C): (B, T, C), computed as the
    equivalent conv2d over a height of 1, whose oneDNN kernels on the CPU take 2-2.5x less time
    forward and backward than conv1d's (64 x 64 x 32, kernel 7, and 32 x 128 x 256, kernel 31)."""
    out = nn.functional.conv2d(
        x.transpose(1, 2).unsqueeze(2),
        conv.weight.unsqueeze(2),
        conv.bias,
        padding=(0, conv.padding[0]),
        groups=conv.groups,
    )
    return out.squeeze(2).transpose(1, 2)


class EncoderBlock(nn.Module):
    """½FF → MHSA → Conv → ½FF, each residual, then a final norm (Conformer macaron layout)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ff1 = FeedForward(cfg.d_model, cfg.d_ff, cfg.dropout)
        self.norm_attn = nn.LayerNorm(cfg.d_model)
        attn_dropout = cfg.dropout if cfg.attn_dropout is None else cfg.attn_dropout
        self.attn = SelfAttention(cfg.d_model, cfg.n_heads, attn_dropout)
        self.drop_attn = Dropout(cfg.dropout)
        self.conv = ConvModule(cfg.d_model, cfg.kernel_size, cfg.dropout)
        self.ff2 = FeedForward(cfg.d_model, cfg.d_ff, cfg.dropout)
        self.norm_out = nn.LayerNorm(cfg.d_model)

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:
        x = x + 0.5 * self.ff1(x)
        h = self.norm_attn(x)
        h, _ = self.attn(h, h, h, key_padding_mask=~valid, need_weights=False)
        x = x + self.drop_attn(h)
        x = x + self.conv(x, valid)
        x = x + 0.5 * self.ff2(x)
        return self.norm_out(x)


class CMINetwork(nn.Module):
    """Inputs (B, T, C) per modality → logits of the 18-class, binary and 9-class heads."""

    def __init__(self, cfg: ModelConfig, nine_class_head: bool = True):
        super().__init__()
        d = cfg.d_model
        self.imu_proj = nn.Linear(len(IMU_FEATURES) + 1, d)  # + rotation presence flag
        self.thm_proj = nn.Linear(2 * N_THM, d)  # values + per-thermopile presence
        self.tof_proj = nn.Linear(N_TOF + N_TOF_SENSORS, d)  # pixels + per-sensor presence
        self.blocks = nn.ModuleList(EncoderBlock(cfg) for _ in range(cfg.n_layers))
        self.dropout = Dropout(cfg.dropout)
        self.head_multiclass = nn.Linear(d, len(GESTURES))
        self.head_binary = nn.Linear(d, 1)
        self.head_nine_class = nn.Linear(d, len(NINE_CLASSES)) if nine_class_head else None

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        present, valid = batch["present"], batch["valid"]  # (B, T, 11), (B, T)
        rot, thm_p, tof_p = present[..., :1], present[..., 1 : 1 + N_THM], present[..., 1 + N_THM :]
        # Missing values are already 0 after normalisation; the flags say which zeros are "absent".
        x = self.imu_proj(torch.cat([batch["imu"], rot], -1))  # (B, T, C)
        thm_any = thm_p.amax(-1, keepdim=True)  # (B, T, 1)
        x = x + thm_any * self.thm_proj(torch.cat([batch["thm"], thm_p], -1))
        tof_any = tof_p.amax(-1, keepdim=True)
        x = x + tof_any * self.tof_proj(torch.cat([batch["tof"], tof_p], -1))
        x = self.dropout(x) * valid[..., None]
        for block in self.blocks:
            x = block(x, valid)
        w = valid[..., None].to(x.dtype)
        pooled = self.dropout((x * w).sum(1) / w.sum(1).clamp(min=1.0))  # (B, C) masked mean
        # The heads in fp32 with autocast off (a few thousand multiply-adds): bf16 logits tie
        # exactly often enough to move an argmax, and every loss term starts from them.
        with torch.autocast(pooled.device.type, enabled=False):
            pooled = pooled.float()
            out = {
                "multiclass": self.head_multiclass(pooled),
                "binary": self.head_binary(pooled).squeeze(-1),
                "features": pooled,  # what every head reads: the gradient-level schemes' Jacobian stops here
            }
            if self.head_nine_class is not None:
                out["nine_class"] = self.head_nine_class(pooled)
        return out
