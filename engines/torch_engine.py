"""The PyTorch engine: eager CAR-DRN on the CPU or a CUDA GPU.

It is the reference every other backend is compared with, and the engine of last
resort: it needs nothing beyond the `torch` that streamfix already depends on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from streamfix.core.errors import OptionError
from streamfix.core.network import CARDRN, fold_batchnorm
from streamfix.core.weights import ModelInfo

from streamfix.engines.base import EngineUnavailable, check_counts, float32_batch
from streamfix.engines.devices import resolve_device


@dataclass(frozen=True, slots=True, kw_only=True)
class TorchConfig:
    device: str = "auto"  # "auto", "cpu", "cuda" or "cuda:N"
    # None: half precision on CUDA (tensor cores), float32 on the CPU. PyTorch's CPU
    # float16 convolutions are slower than float32, so fp16=True applies to CUDA only.
    fp16: bool | None = None
    # bfloat16 on the CPU (autocast): fast only where oneDNN has AMX/AVX-512 BF16
    # kernels, and less exact (bf16 keeps 8 bits of mantissa); off by default.
    cpu_bf16: bool = False
    threads: int = 0  # CPU intra-op threads; 0 keeps PyTorch's default (all cores)
    # NHWC memory layout: the layout oneDNN's (CPU) and cuDNN's (tensor core)
    # convolution kernels want; ~20% faster than NCHW at 480p on our 2-core CPUs.
    channels_last: bool = True
    max_batch: int = 8

    def __post_init__(self) -> None:
        check_counts(threads=self.threads, max_batch=self.max_batch)


def check_available(config: TorchConfig) -> None:
    """Raise EngineUnavailable when `config.device` cannot be used here."""
    try:
        device = resolve_device(config.device)
    except OptionError as exc:  # an unknown name: this backend cannot run there
        raise EngineUnavailable(str(exc)) from None
    if device == "cpu":
        return
    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
        raise EngineUnavailable(
            f"PyTorch ({torch.__version__}, {build}) sees no CUDA GPU; use --device cpu "
            "or install a CUDA build of torch"
        )
    index = torch.device(device).index or 0
    if index >= torch.cuda.device_count():
        raise EngineUnavailable(
            f"{device} does not exist: PyTorch sees {torch.cuda.device_count()} GPU(s)"
        )


class TorchEngine:
    """Runs a BN-folded CAR-DRN under `torch.inference_mode()`."""

    name = "torch"

    def __init__(self, model: CARDRN, info: ModelInfo, config: TorchConfig = TorchConfig()) -> None:
        check_available(config)
        self.info = info
        self.config = config
        self.device = resolve_device(config.device)
        on_cuda = self.device.startswith("cuda")
        self._half = on_cuda and config.fp16 is not False
        self._bf16 = not on_cuda and config.cpu_bf16
        self.precision = "fp16" if self._half else "bf16" if self._bf16 else "fp32"
        self._channels_last = config.channels_last
        self._model = model
        self._in_channels = model.args.channels + model.args.cond_channels
        self._net: CARDRN | None = None

    def __enter__(self) -> "TorchEngine":
        if self.config.threads and self.device == "cpu":
            # Process-wide in PyTorch: an embedding application that wants its own
            # setting should leave `threads` at 0.
            torch.set_num_threads(self.config.threads)
        net = fold_batchnorm(self._model).to(self.device)
        if self._half:
            net = net.half()
        if self._channels_last:
            net = net.to(memory_format=torch.channels_last)
        self._net = net.eval()
        return self

    def __exit__(self, *exc: object) -> None:
        self._net = None
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()

    def infer(self, batch: np.ndarray) -> np.ndarray:
        if self._net is None:
            raise RuntimeError("TorchEngine.infer called outside `with engine:`")
        x = float32_batch(batch, self._in_channels)
        if not x.flags.writeable:  # torch.from_numpy warns on read-only memory (e.g. a broadcast)
            x = x.copy()
        x = torch.from_numpy(x)
        with torch.inference_mode():
            x = x.to(self.device, non_blocking=True)
            if self._half:
                x = x.half()
            if self._channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if self._bf16:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    y = self._net(x)
            else:
                y = self._net(x)
            # .cpu() is the sync point with the GPU. Casting to float32 on the device
            # is cheaper than numpy converting float16 on the host.
            return y.float().contiguous().cpu().numpy()
