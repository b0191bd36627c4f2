"""Export a CAR-DRN to ONNX, the one graph format every non-PyTorch engine starts from.

The graph has one input "input" (N x (C + cond) x H x W) and one output "output"
(N x C x H x W), with batch, height and width dynamic, so one file serves every
resolution and batch size. Batch norm is folded first: the graph holds only Conv,
LeakyRelu, Add and one Slice (the global skip), which every backend runs natively.

Precision (`fp16`):
- False: weights, compute and I/O are float32.
- True: weights and every operation are float16, but the graph I/O stays float32:
  the graph starts with Cast(float32 -> float16) and ends with Cast(float16 ->
  float32). Engines therefore feed and read float32 whatever the precision, and a
  strongly typed TensorRT network built from this graph runs its convolutions in
  FP16 because the types in the graph say so (no builder precision flags needed).

We use the TorchScript-based exporter (`dynamo=False`): the torch.export-based one
needs the extra `onnxscript` package, and for a plain feed-forward conv net both give
the same operators.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from streamfix.core.digests import file_sha256
from streamfix.core.network import CARDRN, fold_batchnorm

# Bump when the graph this module writes changes, so cached files from older code
# are not reused.
EXPORT_VERSION = 1
INPUT_NAME = "input"
OUTPUT_NAME = "output"
# Sample size used only for tracing; every axis that can vary is
# declared dynamic below, so the sample's size does not end up in the graph.
_TRACE_SIZE = 64


class _Float16Compute(nn.Module):
    """Runs a half-precision network between float32 boundaries.

    Keeping float32 I/O means callers never convert arrays themselves; the two Casts
    cost one pass over the input and output, negligible next to nine convolutions.
    """

    def __init__(self, half_model: nn.Module) -> None:
        super().__init__()
        self.net = half_model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.half()).float()


def export_onnx(model: CARDRN, path: Path, *, fp16: bool = False, opset: int = 17) -> Path:
    """Write `model` (BN folded) as an ONNX graph at `path` and return `path`.

    The file is written next to `path` under a temporary name and renamed, so a
    reader never sees a half-written graph.
    """
    path = Path(path)
    net: nn.Module = fold_batchnorm(model).cpu().float().eval()
    if fp16:
        net = _Float16Compute(net.half())
    args = model.args
    sample = torch.rand(1, args.channels + args.cond_channels, _TRACE_SIZE, _TRACE_SIZE)
    dynamic = {0: "batch", 2: "height", 3: "width"}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with warnings.catch_warnings():
            # The TorchScript exporter announces its own deprecation on every call;
            # see the module docstring for why we still use it.
            warnings.simplefilter("ignore", DeprecationWarning)
            with torch.inference_mode(False), torch.no_grad():
                torch.onnx.export(
                    net,
                    (sample,),
                    str(tmp),
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    dynamic_axes={INPUT_NAME: dynamic, OUTPUT_NAME: dynamic},
                    opset_version=opset,
                    do_constant_folding=True,
                    dynamo=False,
                )
        graph = onnx.load(str(tmp))
        onnx.checker.check_model(graph)
        _set_metadata(graph, model, fp16=fp16)
        onnx.save(graph, str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _set_metadata(graph: onnx.ModelProto, model: CARDRN, *, fp16: bool) -> None:
    """Record what the graph is, so a cached file can be inspected without guessing."""
    args = model.args
    props = {
        "streamfix.precision": "float16" if fp16 else "float32",
        "streamfix.io_dtype": "float32",
        "streamfix.channels": str(args.channels),
        "streamfix.cond_channels": str(args.cond_channels),
    }
    for key, value in props.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    graph.producer_name = "streamfix"


def onnx_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes (ONNX graphs, weights files): a cache key."""
    return file_sha256(path)


def model_sha256(model: CARDRN) -> str:
    """Hex sha256 of a model's architecture and BN-folded parameters.

    This is the cache key of exported graphs. It hashes what gets exported rather
    than the weights file the model came from, so a model changed in memory or
    built without a file never picks up a stale graph, while reloading the same
    file gives the same key.
    """
    folded = fold_batchnorm(model)
    digest = hashlib.sha256(json.dumps(folded.args.to_dict(), sort_keys=True).encode())
    for key, tensor in sorted(folded.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().float().contiguous().numpy().tobytes())
    return digest.hexdigest()


def cached_onnx(model: CARDRN, name: str, cache_dir: Path, *, fp16: bool = False, opset: int = 17) -> Path:
    """The ONNX graph of `model` in `cache_dir`, exported on first use.

    The file name says what the graph is (model name, hash, precision, opset). A
    cached file that does not load as a valid graph (e.g. a disk filled up while
    another program wrote it) is exported again. Two processes exporting at once
    each write their own temporary file and rename it: the loser's rename replaces
    an identical file, so no lock is needed.
    """
    precision = "fp16" if fp16 else "fp32"
    path = Path(cache_dir) / f"{safe_file_name(name)}-{model_sha256(model)[:16]}-{precision}-opset{opset}-v{EXPORT_VERSION}.onnx"
    if path.is_file() and _is_valid_graph(path):
        return path
    return export_onnx(model, path, fp16=fp16, opset=opset)


def safe_file_name(name: str) -> str:
    """`name` (a model name or path) with only characters every file system accepts."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "model"


def _is_valid_graph(path: Path) -> bool:
    try:
        onnx.checker.check_model(onnx.load(str(path)))
    except Exception:  # protobuf and checker raise many types; any of them means "redo"
        return False
    return True
