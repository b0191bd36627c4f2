"""CAR-DRN: the dual-residual artifact-removal network, and batch-norm folding.

The 2020 paper (Signal, Image and Video Processing, DOI 10.1007/s11760-020-01768-3)
fixes: 8 convolution layers, a 9x9x64 feature extraction, a 64-filter mapping layer, a
three-convolution residual block with batch norm, leaky ReLU of slope 1/r = 0.2 and
dilation rate 2, 16-filter enhancement and mapping layers, a 3x3 reconstruction and a
global skip from input to output, trained with MSE. Everything else below is our
choice, written down where it is made:

    layer  kind                       kernel  dilation  out   BN   activation
    1      feature extraction         9x9     1         64    no   leaky 0.2
    2      mapping                    3x3     1         64    no   leaky 0.2
    3      residual block, conv a     3x3     2         64    yes  leaky 0.2
    4      residual block, conv b     3x3     2         64    yes  leaky 0.2
    5      residual block, conv c     3x3     2         64    yes  (none: added to skip)
           local skip: out = leaky(conv_c + layer-2 output)
    6      enhancement                3x3     1         16    no   leaky 0.2
    7      mapping                    3x3     1         16    no   leaky 0.2
    8      reconstruction             3x3     1         C     no   none
           global skip: y = x[:, :C] + layer-8 output (the net predicts the residual)

- Kernel 3x3 for layers 2 and 6-8 gives ~164k weights for one channel, matching the
  paper's ~165k. All three residual-block convs are dilated: with layers 1-2 mixing
  neighbours first, the gridding of stacked dilations is covered, and the receptive
  field (29 px) spans more than three 8x8 blocks, which deblocking needs.
- Padding keeps the spatial size, so any height/width (odd ones too) works.
- Conditioning (our addition, for "how strong are the artifacts"): `cond_channels`
  extra input planes (e.g. a QP map / 51 or a JPEG quality map) are concatenated to the
  image planes at the input; only the image planes take part in the global skip.

The network takes one tensor N x (C + cond_channels) x H x W and returns N x C x H x W,
so every inference engine sees a single input and a single output.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelArgs:
    """Everything needed to rebuild a CAR-DRN; stored inside every weights file."""

    channels: int = 1  # image planes restored: 1 (luma/gray) or 3 (colour)
    cond_channels: int = 0  # extra conditioning planes appended to the input
    features: int = 64  # width of layers 1-5
    mid_features: int = 16  # width of the enhancement and mapping layers 6-7
    slope: float = 0.2  # leaky ReLU negative slope (the paper's 1/r with r = 5)
    dilation: int = 2  # dilation of the residual-block convolutions
    batch_norm: bool = True  # BN inside the residual block (folded away for inference)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelArgs":
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown model_args keys: {sorted(unknown)}")
        return cls(**data)


def _conv(cin: int, cout: int, kernel: int, dilation: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, padding=dilation * (kernel // 2), dilation=dilation, bias=bias)


class CARDRN(nn.Module):
    """CAR-DRN for `args.channels` planes (+ optional conditioning planes)."""

    def __init__(self, args: ModelArgs = ModelArgs(), *, identity_init: bool = False) -> None:
        super().__init__()
        self.args = args
        f, m, d = args.features, args.mid_features, args.dilation
        self.extract = _conv(args.channels + args.cond_channels, f, 9)
        self.map = _conv(f, f, 3)
        # Convolutions before BN need no bias (BN has its own shift); after folding
        # they get one.
        bn = args.batch_norm
        self.res_a = _conv(f, f, 3, d, bias=not bn)
        self.res_b = _conv(f, f, 3, d, bias=not bn)
        self.res_c = _conv(f, f, 3, d, bias=not bn)
        self.bn_a = nn.BatchNorm2d(f) if bn else nn.Identity()
        self.bn_b = nn.BatchNorm2d(f) if bn else nn.Identity()
        self.bn_c = nn.BatchNorm2d(f) if bn else nn.Identity()
        self.enhance = _conv(f, m, 3)
        self.map2 = _conv(m, m, 3)
        self.reconstruct = _conv(m, args.channels, 3)
        self.act = nn.LeakyReLU(args.slope, inplace=True)
        if identity_init:
            # A zero last layer makes the untrained net the identity: training starts
            # from "no change". It suits JPEG, whose blocking gives a strong signal at
            # once. For H.264 (weak signal: the codec's own deblocking already removed
            # the blocks) it measurably stalled training at the identity for 2,000+
            # steps, since every earlier layer's gradient passes through this layer's
            # (zero) weights; video models use PyTorch's default initialisation.
            nn.init.zeros_(self.reconstruct.weight)
            nn.init.zeros_(self.reconstruct.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = self.act
        h = act(self.extract(x))
        h = act(self.map(h))
        r = act(self.bn_a(self.res_a(h)))
        r = act(self.bn_b(self.res_b(r)))
        r = self.bn_c(self.res_c(r))
        h = act(r + h)
        h = act(self.enhance(h))
        h = act(self.map2(h))
        return x[:, : self.args.channels] + self.reconstruct(h)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """Return a conv equal to bn(conv(x)) with BN in inference mode (running stats)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size,
        padding=conv.padding, dilation=conv.dilation, bias=True,
    )
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    with torch.no_grad():
        fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
        fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    return fused


def fold_batchnorm(model: CARDRN) -> CARDRN:
    """A copy of `model` for inference with every BN folded into its convolution.

    The result has the same outputs as `model.eval()` and no BN layers, which is
    what ONNX/TensorRT engines and the shipped weights use.
    """
    args = model.args
    folded = CARDRN(ModelArgs(**{**args.to_dict(), "batch_norm": False}))
    state = {k: v for k, v in model.state_dict().items() if not k.startswith(("res_", "bn_"))}
    folded.load_state_dict(state, strict=False)
    if args.batch_norm:
        folded.res_a = _fold(model.res_a, model.bn_a)
        folded.res_b = _fold(model.res_b, model.bn_b)
        folded.res_c = _fold(model.res_c, model.bn_c)
    else:
        folded.res_a, folded.res_b, folded.res_c = (
            copy.deepcopy(m) for m in (model.res_a, model.res_b, model.res_c)
        )
    return folded.eval()
