"""Choosing an engine: a table lookup, with one logged reason for every backend skipped.

Each backend module named in `BACKENDS` provides, by the names given in its row:

    <Config>                  frozen dataclass of its options; `device` and `max_batch`
                              fields, when it has them, are filled in by `choose()`
    check_available(config)   returns None, or raises EngineUnavailable with a
                              one-line reason that says what to install or change
    <Engine>(model, info, config)
                              a not-yet-entered Engine (see base.py)

Backend modules import their heavy packages (onnxruntime, tensorrt, pycuda) inside
functions, so a missing package becomes a reason here instead of an ImportError
when streamfix starts. A module that cannot be imported at all is reported the same
way, with the row's install hint.

`engine="auto"` tries tensorrt, then onnxruntime, then openvino, then torch. TensorRT
needs an NVIDIA GPU, and the one line saying why it is not used is still logged on a
CPU machine: users on a GPU machine with a broken install need to see it. On the CPU,
`auto` does not stop at the first usable backend: every usable (engine, precision)
pair is a candidate, and the fastest that keeps the restoration gain is chosen by
measurement, once per machine (engines/auto_choice.py). `precision` (auto, fp32,
bf16, int8; engines/precision.py) narrows the candidates; a named engine with a named
precision is used exactly as asked, or is an OptionError.

A backend whose row says `trusted_after_check=False` (TensorRT) can pass
`check_available()` and still fail minutes later, building or loading its engine
or running its first batch. `choose()` returns it inside a FallbackEngine
(fallback.py): with "auto", such a failure closes it, logs one reason, appends it
to the returned fallbacks and continues down the order with the same batch; asked
for by name, the failure is an OptionError (one line, exit code 2).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from streamfix.core.yaml_config import ConfigError, from_dict
from streamfix.core.errors import OptionError
from streamfix.core.options import BACKEND_NAMES, ENGINE_NAMES, MAX_BATCH, MAX_TILE, MIN_TILE, PRECISION_NAMES
from streamfix.core.network import CARDRN
from streamfix.core.weights import ModelInfo

from streamfix.engines.base import Engine, EngineUnavailable, Fallback, one_line as _one_line
from streamfix.engines.auto_choice import Candidate, Choice, cached_choice, measured_choice
from streamfix.engines.calibration_set import CalibrationUnavailable
from streamfix.engines.devices import cache_root, resolve_device
from streamfix.engines.fallback import FallbackEngine
from streamfix.engines.precision import check_cpu_precision, offered, precision_of, with_precision
from streamfix.engines.tiling import (TiledEngine, TilingConfig, budget_for, max_pixels_for, pixels_for_budget,
                                     receptive_radius)


@dataclass(frozen=True, slots=True)
class Backend:
    module: str  # import path of the backend's module
    config_class: str  # names inside that module
    engine_class: str
    install_hint: str  # what to run when the module cannot be imported
    # False: may still fail after check_available() passed, until its first batch ran
    trusted_after_check: bool = True


BACKENDS: dict[str, Backend] = {
    "tensorrt": Backend(
        "streamfix.engines.tensorrt_engine", "TensorRTConfig", "TensorRTEngine",
        'pip install "streamfix[tensorrt-cu12]" or "streamfix[tensorrt-cu13]" (nvidia-smi shows the CUDA '
        'version of your driver) on a machine with an NVIDIA GPU',
        trusted_after_check=False,
    ),
    "onnxruntime": Backend(
        "streamfix.engines.onnxruntime_engine", "OnnxRuntimeConfig", "OnnxRuntimeEngine",
        "pip install onnxruntime (or onnxruntime-gpu)",
    ),
    "openvino": Backend(
        "streamfix.engines.openvino_engine", "OpenVinoConfig", "OpenVinoEngine",
        'pip install "streamfix[openvino]"',
    ),
    "torch": Backend(
        "streamfix.engines.torch_engine", "TorchConfig", "TorchEngine",
        "pip install torch",
    ),
}
AUTO_ORDER = BACKEND_NAMES  # core/options.py lists them in the order auto tries them
assert set(BACKENDS) == set(BACKEND_NAMES), "core/options.py and BACKENDS must name the same engines"


def _module(name: str):
    row = BACKENDS[name]
    try:
        return importlib.import_module(row.module)
    except ImportError as exc:
        raise EngineUnavailable(f"cannot import {row.module} ({exc}); {row.install_hint}") from None


def engine_config(name: str, data: Mapping[str, Any] | None = None, where: str = "engine") -> Any:
    """The config dataclass of backend `name`, from YAML-style `data` (strictly)."""
    if name not in BACKENDS:
        raise ConfigError(f"{where}: unknown engine {name!r} (known: {', '.join(BACKENDS)})")
    try:
        module = _module(name)
    except EngineUnavailable as exc:
        raise ConfigError(f"{where}: engine {name} cannot be configured here: {exc}") from None
    return from_dict(getattr(module, BACKENDS[name].config_class), dict(data or {}), where)


def _prepared_config(name: str, given: Any, device: str, max_batch: int, *, device_named: bool) -> Any:
    """`given` (or the defaults) with the device and batch that `choose()` works with.

    A config that names a device of its own keeps it unless the caller named one
    (`device_named`); "auto" in the config is replaced by `device`.
    """
    config = given if given is not None else getattr(_module(name), BACKENDS[name].config_class)()
    fields = {f.name for f in dataclasses.fields(config)}
    changes: dict[str, Any] = {}
    if "device" in fields and (device_named or getattr(config, "device") == "auto"):
        changes["device"] = device
    if "max_batch" in fields:
        changes["max_batch"] = max_batch
    return dataclasses.replace(config, **changes)


def _build(name: str, model: CARDRN, info: ModelInfo, config: Any) -> Engine:
    module = _module(name)
    module.check_available(config)
    return getattr(module, BACKENDS[name].engine_class)(model, info, config)


def choose(
    model: CARDRN,
    info: ModelInfo,
    *,
    engine: str = "auto",
    device: str = "auto",
    max_batch: int = 8,
    tile: int = 0,
    log: Callable[[str], Any] = print,
    configs: Mapping[str, Any] | None = None,
    tiling: TilingConfig = TilingConfig(),
    precision: str = "auto",
    memory_mb: int | None = None,
    measure: bool = True,
) -> tuple[Engine, list[Fallback]]:
    """A not-yet-entered engine for `model`, and the backends skipped on the way.

    `engine` is "auto" or a name in BACKENDS; an explicitly named engine that cannot
    run here is an OptionError with the reason, never a silent substitute.
    `configs` maps engine names to their config dataclasses (see `engine_config`).
    `tile` > 0 cuts frames into tiles of that side; 0 tiles only frames over
    `tiling.max_pixels`. The result always honours any batch size up to `max_batch`
    and any frame size. With "auto", a TensorRT engine that fails before its first
    batch is replaced by the next backend, and its reason is logged and appended to
    the returned list then. `measure=False`: on a CPU, auto uses its cached choice
    but does not stop to time the candidates when there is none (live streams).
    """
    if engine not in ENGINE_NAMES:
        raise OptionError(f"unknown engine {engine!r}: use one of {', '.join(ENGINE_NAMES)}")
    if not 1 <= max_batch <= MAX_BATCH:
        raise OptionError(f"the batch size must be from 1 to {MAX_BATCH}, got {max_batch}")
    if tile != 0 and not MIN_TILE <= tile <= MAX_TILE:
        raise OptionError(f"the tile size must be 0 (whole frames) or from {MIN_TILE} to {MAX_TILE}, got {tile}")
    if precision not in PRECISION_NAMES:
        raise OptionError(f"unknown precision {precision!r}: use one of {', '.join(PRECISION_NAMES)}")
    if memory_mb is not None and memory_mb < 1:
        raise OptionError(f"the memory budget must be at least 1 MiB, got {memory_mb}")
    device_named = device != "auto"
    # "auto" with "auto" is settled once here, so every backend tried looks at the same
    # device: otherwise a CPU-only onnxruntime on a GPU machine would be picked (on the
    # CPU) ahead of PyTorch on the GPU. A named engine resolves "auto" itself.
    if device_named or engine == "auto":
        device = resolve_device(device)
    configs = configs or {}
    if engine == "auto" and device == "cpu":
        return _choose_on_cpu(model, info, precision, configs, max_batch, log,
                              lambda chosen: _wrapped(chosen, model, tile, tiling, max_batch, memory_mb), measure)
    fallbacks: list[Fallback] = []
    remaining = list(AUTO_ORDER if engine == "auto" else (engine,))

    def skip(name: str, reason: str) -> None:
        fallback = Fallback(name, reason)
        log(str(fallback))
        fallbacks.append(fallback)

    def replace(name: str, reason: str) -> Engine:
        skip(name, reason)
        return next_engine()

    def next_engine() -> Engine:
        while remaining:
            name = remaining.pop(0)
            try:
                config = _prepared_config(name, configs.get(name), device, max_batch, device_named=device_named)
                config = with_precision(name, config, precision, _device_of(name, config))
                chosen = _build(name, model, info, config)
            except EngineUnavailable as exc:
                reason = _one_line(str(exc))
                if engine != "auto":
                    raise OptionError(f"engine {name} cannot be used: {reason}") from exc
                skip(name, reason)
                continue
            if BACKENDS[name].trusted_after_check:
                return chosen
            return FallbackEngine(chosen, functools.partial(replace, name) if engine == "auto" else None)
        reasons = "; ".join(f"{f.engine}: {f.reason}" for f in fallbacks)
        raise OptionError(f"no engine can run on {device}: {reasons}")

    return _wrapped(next_engine(), model, tile, tiling, max_batch, memory_mb), fallbacks


def _wrapped(chosen: Engine, model: CARDRN, tile: int, tiling: TilingConfig, max_batch: int,
             memory_mb: int | None = None) -> Engine:
    """`chosen` in the tiling wrapper, as the loop in `choose()` wraps its engine: under a
    memory budget (the CPU's default, or `memory_mb`) the pixels per call follow from
    what this engine holds per pixel, and large frames are tiled as planned for them."""
    budget = budget_for(chosen.device, memory_mb)
    max_pixels, auto_tile = tiling.max_pixels or max_pixels_for(chosen.device), tiling.auto_tile
    if budget is not None:
        fits = pixels_for_budget(budget, chosen.name, precision_of(chosen), model.args.features)
        max_pixels, auto_tile = min(tiling.max_pixels or fits, fits), 0
    return TiledEngine(chosen, tile or tiling.tile, max(tiling.margin, receptive_radius(model)),
                       max_pixels=max_pixels, auto_tile=auto_tile, max_batch=max_batch)


def _device_of(name: str, config: Any) -> str:
    """Where backend `name` will run with `config` ("auto" resolved its way)."""
    resolve = getattr(_module(name), "resolve_device", None)
    device = getattr(config, "device", "cuda")
    return resolve(device) if resolve is not None else device


def cpu_candidates(precision: str, configs: Mapping[str, Any], max_batch: int = 1,
                   ) -> tuple[list[Candidate], list[Fallback]]:
    """Every usable (engine, precision) pair on the CPU, and the backends skipped."""
    candidates: list[Candidate] = []
    fallbacks: list[Fallback] = []
    for name in AUTO_ORDER:
        try:
            config = _prepared_config(name, configs.get(name), "cpu", max_batch, device_named=True)
            _module(name).check_available(config)
        except EngineUnavailable as exc:
            fallbacks.append(Fallback(name, _one_line(str(exc))))
            continue
        candidates += [Candidate(name, p, with_precision(name, config, p, "cpu"))
                       for p in offered(name) if precision in ("auto", p)]
    return candidates, fallbacks


def _choose_on_cpu(model: CARDRN, info: ModelInfo, precision: str, configs: Mapping[str, Any], max_batch: int,
                   log: Callable[[str], Any], wrap: Callable[[Engine], Engine],
                   measure: bool = True) -> tuple[Engine, list[Fallback]]:
    candidates, fallbacks = cpu_candidates(precision, configs, max_batch)
    for fallback in fallbacks:
        log(str(fallback))
    if not candidates:
        check_cpu_precision(precision)
        reasons = "; ".join(f"{f.engine}: {f.reason}" for f in fallbacks)
        if precision == "auto":
            raise OptionError(f"no engine can run on cpu: {reasons}")
        raise OptionError(f"no engine here runs {precision} on the CPU: {reasons}")
    chosen = candidates[0]
    if len(candidates) == 1:
        log(f"engine auto on this CPU: {chosen.label}: the only candidate")
    elif not measure and cached_choice(model, info, candidates, cache_dir=cache_root() / "cpu-choice") is None:
        # Timing takes seconds per model, during which a live stream's frames would
        # pass through (measured: 10% of a 320x240 stream restored instead of 92%).
        log(f"engine auto on this CPU: {chosen.label}, the first candidate, unmeasured: a live run does not stop "
            f"to time the engines; run `streamfix info --measure` once to choose the fastest")
    else:
        try:
            choice = measured_choice(model, info, candidates, lambda c: _build(c.engine, model, info, c.config),
                                     cache_dir=cache_root() / "cpu-choice", log=log)
        except CalibrationUnavailable as exc:
            log(f"engine auto on this CPU: {chosen.label}, the first candidate, unmeasured: {exc}")
        else:
            chosen = next(c for c in candidates if c.label == choice.label)
            log(choice.line())
    return wrap(_build(chosen.engine, model, info, chosen.config)), fallbacks


def cpu_choice(model: CARDRN, info: ModelInfo, *, precision: str = "auto",
               configs: Mapping[str, Any] | None = None, measure: bool = False,
               log: Callable[[str], Any] = print) -> Choice | None:
    """What `--engine auto` picks on this CPU for `model`: the cached decision, a new
    measurement with `measure`, or None when it was never measured (or there is
    nothing to choose between)."""
    candidates, _ = cpu_candidates(precision, configs or {})
    if len(candidates) < 2:
        return None
    if measure:
        return measured_choice(model, info, candidates, lambda c: _build(c.engine, model, info, c.config),
                               cache_dir=cache_root() / "cpu-choice", log=log, refresh=True)
    return cached_choice(model, info, candidates, cache_dir=cache_root() / "cpu-choice")


def describe_engines(device: str = "auto") -> list[tuple[str, bool, str]]:
    """(name, usable, why or why not) for each backend, in `auto` order, for `streamfix info`."""
    device = resolve_device(device)
    rows = []
    for name in AUTO_ORDER:
        try:
            module = _module(name)
            module.check_available(_prepared_config(name, None, device, 1, device_named=True))
        except EngineUnavailable as exc:
            rows.append((name, False, _one_line(str(exc))))
        else:
            rows.append((name, True, f"usable on {device}"))
    return rows
