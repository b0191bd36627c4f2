"""int8 CAR-DRN graphs: static quantization of the cached float32 ONNX graph.

ONNX Runtime's `quantize_static` writes a QDQ graph (QuantizeLinear /
DequantizeLinear pairs around each quantized operator) with int8 weights, one scale
per output channel, and uint8 activations whose ranges (99.999th percentiles) come
from running the float32 graph on the built-in calibration set: real x264 and JPEG
crops with their QP or quality planes (engines/calibration_set.py), not noise. ONNX Runtime fuses the pairs
into integer convolutions; OpenVINO reads the same graph as its own int8 model.

Layers named in `keep_float` stay in float32. They are named as in CAR-DRN
(core/network.py: the convolutions in order, and the two skips), so the choice holds
for every width of the network:

    extract             the first convolution (its input: the 8-bit picture + condition)
    map, res_a, res_b, res_c
                        the 64-channel layers: ~87% of the multiply-adds
    enhance, map2       the 16-channel layers
    reconstruct         the last convolution (it predicts the residual, a few code values)
    local_skip          the residual block's Add
    global_skip         the final Add of input and residual

Which to keep was measured (benchmarks/int8_layers.py, results in benchmarks/cpu.md).

The quantized graph is cached beside the float32 one, keyed by the model hash, these
settings, the calibration set and the onnxruntime version, so it is made once (a few
seconds) and later runs load it at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnx

from streamfix.core.network import CARDRN
from streamfix.core.weights import ModelInfo

from streamfix.engines.base import EngineUnavailable
from streamfix.engines.calibration_set import CalibrationSet, CalibrationUnavailable, calibration_set
from streamfix.engines.onnx_export import INPUT_NAME, cached_onnx, model_sha256, safe_file_name

# Bump when the graphs written here change for the same settings.
QUANTIZE_VERSION = 1
CONVS = ("extract", "map", "res_a", "res_b", "res_c", "enhance", "map2", "reconstruct")
ROLES = CONVS + ("local_skip", "global_skip")
# Only the global skip stays float: the model's output is then the exact 8-bit input
# plus an int8-computed residual, instead of a sum requantized on a uint8 grid that
# does not fall on the picture's code values. Gain lost against float32 (dB), all
# int8 -> global_skip float, check split / held-out (BasketballPass x264 CRF 40, LIVE1
# q10): video -0.016/-0.013 -> -0.013/-0.011, JPEG -0.021/-0.015 -> -0.014/-0.012.
# Also keeping the first and last convolutions or the 16-channel tail gained at most
# 0.003 dB more, for ~10% more CPU time (extract alone is 6% of the multiply-adds).
# `python -m streamfix.benchmarks.int8_layers --images ... --video ...`; table in
# benchmarks/cpu.md, "int8: which layers stay float".
DEFAULT_KEEP_FLOAT: tuple[str, ...] = ("global_skip",)
# Activation ranges: the 99.999th percentile of each activation on the calibration set
# rather than its extremes, so a few outlying values do not coarsen the uint8 steps of
# all the others. Gain lost against float32, MinMax -> percentile, with the models
# shipped on 2026-11-29 (same command, benchmarks/cpu.md "int8: which layers stay
# float", second table): video check split -0.012 -> -0.007, held-out -0.015 -> -0.009;
# JPEG -0.014 -> -0.010, held-out -0.011 -> -0.010. (With the earlier video model and
# the first convolution also in float, percentile measured worse held-out: -0.017.)
DEFAULT_CALIBRATION = "percentile"
_CALIBRATION_BATCH = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class Int8Settings:
    keep_float: tuple[str, ...] = DEFAULT_KEEP_FLOAT  # roles computed in float32 (see above)
    per_channel: bool = True  # one weight scale per output channel
    # minmax: the observed range; percentile / entropy clip outliers of the activations.
    calibration: Literal["minmax", "percentile", "entropy"] = DEFAULT_CALIBRATION
    percentile: float = 99.999  # with calibration "percentile": the share of values inside the range
    # 7-bit weights: avoids the int16 saturation of AVX2's u8 x s8 multiply-add on CPUs
    # without VNNI, at the cost of one bit of weight precision.
    reduce_range: bool = False

    def __post_init__(self) -> None:
        unknown = sorted(set(self.keep_float) - set(ROLES))
        if unknown:
            raise ValueError(f"keep_float: unknown layer {unknown[0]!r} (known: {', '.join(ROLES)})")


def role_nodes(graph: onnx.ModelProto, roles: tuple[str, ...]) -> list[str]:
    """Names of the nodes of a float32 CAR-DRN graph that play `roles`."""
    nodes = list(graph.graph.node)
    convs = [n.name for n in nodes if n.op_type == "Conv"]
    adds = [n.name for n in nodes if n.op_type == "Add"]
    if len(convs) != len(CONVS) or len(adds) != 2:
        raise ValueError(f"not a CAR-DRN graph: {len(convs)} Conv and {len(adds)} Add nodes")
    by_role = {**dict(zip(CONVS, convs)), "local_skip": adds[0], "global_skip": adds[1]}
    return [by_role[role] for role in roles]


def _version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def int8_key(model: CARDRN, calibration: CalibrationSet, settings: Int8Settings, opset: int) -> dict:
    """Everything the quantized graph depends on."""
    return {"model": model_sha256(model), "settings": asdict(settings), "calibration": calibration.sha256,
            "onnxruntime": _version(), "opset": opset, "version": QUANTIZE_VERSION}


def cached_int8_onnx(model: CARDRN, name: str, cache_dir: Path, calibration: CalibrationSet,
                     settings: Int8Settings = Int8Settings(), *, opset: int = 17) -> Path:
    """The int8 QDQ graph of `model`, quantized on first use and cached in `cache_dir`."""
    key = int8_key(model, calibration, settings, opset)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"{safe_file_name(name)}-{key['model'][:16]}-int8-{digest}.onnx"
    if path.is_file():
        try:
            onnx.checker.check_model(onnx.load(str(path)))
            return path
        except Exception:  # a half-written or damaged file: quantize again
            pass
    float_graph = cached_onnx(model, name, cache_dir, opset=opset)
    return _quantize(float_graph, path, calibration.calibrate, settings, key)


def int8_graph(model: CARDRN, info: ModelInfo, cache_dir: Path, settings: Int8Settings, *, opset: int = 17) -> Path:
    """The engines' way in: the cached int8 graph calibrated on the built-in set, or
    EngineUnavailable when that set cannot feed this model."""
    try:
        calibration = calibration_set(info)
    except CalibrationUnavailable as exc:
        raise EngineUnavailable(f"no int8 graph for this model: {exc}") from None
    return cached_int8_onnx(model, info.name, cache_dir, calibration, settings, opset=opset)


def _quantize(float_graph: Path, path: Path, inputs: np.ndarray, settings: Int8Settings, key: dict) -> Path:
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter(inputs[i : i + _CALIBRATION_BATCH] for i in range(0, len(inputs), _CALIBRATION_BATCH))

        def get_next(self) -> dict | None:
            batch = next(self._batches, None)
            return None if batch is None else {INPUT_NAME: batch}

    method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
              "entropy": CalibrationMethod.Entropy}[settings.calibration]
    exclude = role_nodes(onnx.load(str(float_graph)), settings.keep_float)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # quantize_static logs a pre-processing hint on the root logger at every call; the
    # graph is already shape-complete and folded (onnx_export.py), so the hint is noise.
    # The histogram calibrators print their progress; stdout may be the output video
    # (`streamfix run in.mp4 -`), so that goes nowhere.
    root, level = logging.getLogger(), logging.getLogger().level
    root.setLevel(max(level, logging.ERROR))
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            quantize_static(str(float_graph), str(tmp), Batches(), quant_format=QuantFormat.QDQ,
                            per_channel=settings.per_channel, reduce_range=settings.reduce_range,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            nodes_to_exclude=exclude, calibrate_method=method,
                            extra_options={"CalibPercentile": settings.percentile})
        graph = onnx.load(str(tmp))
        # The quantizer copies the float32 graph's metadata; say what this one is.
        props = {p.key: p.value for p in graph.metadata_props}
        props.update({"streamfix.precision": "int8", "streamfix.int8_key": json.dumps(key, sort_keys=True)})
        del graph.metadata_props[:]
        for k, v in props.items():
            entry = graph.metadata_props.add()
            entry.key, entry.value = k, v
        onnx.save(graph, str(tmp))
        os.replace(tmp, path)
    finally:
        root.setLevel(level)
        tmp.unlink(missing_ok=True)
    return path
