"""`--engine auto --precision auto` on a CPU: time the candidates once, keep the choice.

Which engine and precision is fastest depends on the CPU (AVX2 only, AVX-512 with
VNNI, BF16 or AMX units), on the package versions and on the model's width, so it is
measured on the machine rather than guessed:

1. every usable (engine, precision) candidate restores the built-in calibration
   set's check split (engines/calibration_set.py): real x264/JPEG crops of pictures
   the models never trained on, 24 crops of 128 x 128, about one 480p frame;
2. its restoration gain against the pristine crops is compared with the float32
   reference's (eager PyTorch); a candidate losing more than MAX_LOSS_DB is dropped;
3. the time is that of a call on one frame of about 480p, the crops' mosaic
   (`mosaic`), the fastest of TIMED_CALLS after one untimed; every step goes
   candidate after candidate, so a change in the machine's load hits all of them
   alike; the fastest candidate kept wins.

The decision is cached as JSON under <user cache>/streamfix/cpu-choice, keyed by
the CPU model and flags, the core count, the package versions, the model hash, the
candidates with their options and the calibration set: any change measures again.
`decide()` is pure, so tests give it timings and gains.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from streamfix.core.errors import OptionError
from streamfix.core.network import CARDRN
from streamfix.core.weights import ModelInfo

from streamfix.engines.base import Engine, one_line
from streamfix.engines.calibration_set import CalibrationSet, calibration_set
from streamfix.engines.fp16_gate import reference_output
from streamfix.engines.onnx_export import model_sha256, safe_file_name
from streamfix.engines.precision import cpu_description

MAX_LOSS_DB = 0.02  # most gain a faster candidate may lose against float32 on the check split
CHUNK = 6  # crops per timed call: 6 x 128 x 128 = 98k pixels, about a quarter of 480p
CHOICE_VERSION = 2  # bump when the measurement changes, so older decisions are not reused
TIMED_CALLS = 2  # timed calls on the mosaic frame per candidate (the fastest counts)
PACKAGES = ("streamfix", "torch", "onnxruntime", "openvino")
BASELINE = "onnxruntime fp32"  # speed-ups are stated against it when it was measured


@dataclass(frozen=True, slots=True)
class Candidate:
    engine: str
    precision: str
    config: Any  # the backend's config dataclass, precision applied

    @property
    def label(self) -> str:
        return f"{self.engine} {self.precision}"


@dataclass(frozen=True, slots=True)
class Measurement:
    label: str
    seconds: float | None = None  # fastest timed call (CHUNK crops)
    gain_db: float | None = None
    error: str | None = None  # why it could not be measured


@dataclass(frozen=True, slots=True)
class Choice:
    label: str  # "engine precision" of the winner
    reason: str  # one line: why it won, what was dropped
    measurements: tuple[Measurement, ...]
    reference_gain_db: float
    measured_at: str  # local time of the measurement
    from_cache: bool = False

    @property
    def engine(self) -> str:
        return self.label.split()[0]

    @property
    def precision(self) -> str:
        return self.label.split()[1]

    def summary(self) -> str:
        when = f"cached, measured {self.measured_at}" if self.from_cache else f"measured now, {self.measured_at}"
        return f"{self.label}: {self.reason} ({when})"

    def line(self) -> str:
        return f"engine auto on this CPU: {self.summary()}"


def decide(measurements: Sequence[Measurement], reference_gain_db: float,
           max_loss_db: float = MAX_LOSS_DB) -> tuple[str, str]:
    """(winner's label, one-line reason): the fastest candidate whose gain is within
    `max_loss_db` of the reference's."""
    usable = [m for m in measurements if m.error is None and m.seconds is not None and m.gain_db is not None]
    kept = [m for m in usable if m.gain_db >= reference_gain_db - max_loss_db]
    if not kept:
        tried = "; ".join(f"{m.label}: {m.error or f'gain {m.gain_db:+.3f} dB'}" for m in measurements)
        raise OptionError(f"no engine keeps the restoration gain on this CPU ({tried}); "
                          "name one with --engine and --precision")
    best = min(kept, key=lambda m: m.seconds)
    base = next((m for m in usable if m.label == BASELINE), None) or max(kept, key=lambda m: m.seconds)
    speed = f"{base.seconds / best.seconds:.2f}x {base.label}" if base is not best else "the only one kept"
    reason = (f"fastest of {len(kept)} that keep the gain ({speed}; gain {best.gain_db:+.3f} dB, "
              f"float32 {reference_gain_db:+.3f} dB, at most {max_loss_db:g} dB less allowed)")
    dropped = [f"{m.label} loses {reference_gain_db - m.gain_db:.3f} dB" for m in usable if m not in kept]
    dropped += [f"{m.label}: {m.error}" for m in measurements if m.error is not None]
    if dropped:
        reason += "; dropped " + ", ".join(dropped)
    return best.label, reason


def _package_versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def _options(config: Any) -> dict[str, str]:
    """A candidate's options as they affect the choice. Not the cache folder, nor the
    batch size: the time per frame hardly depends on it on a CPU (benchmarks/cpu.md),
    and `streamfix info` must find the decision a run made with any batch."""
    return {f.name: str(getattr(config, f.name)) for f in dataclasses.fields(config)
            if f.name not in ("cache_dir", "max_batch")}


def choice_key(model: CARDRN, candidates: Sequence[Candidate], calibration: CalibrationSet) -> dict:
    """Everything the decision depends on; a different key means measuring again."""
    cpu, flags = cpu_description()
    return {"cpu": cpu, "flags": sorted(flags), "cores": os.cpu_count(), "packages": _package_versions(),
            "model": model_sha256(model), "calibration": calibration.sha256, "max_loss_db": MAX_LOSS_DB,
            "candidates": {c.label: _options(c.config) for c in candidates}, "version": CHOICE_VERSION}


def _cache_path(cache_dir: Path, name: str, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir) / f"{safe_file_name(name)}-{digest}.json"


def load_choice(path: Path, key: dict) -> Choice | None:
    """The decision stored at `path` if it was made for exactly `key`."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != key:
        return None
    try:
        c = data["choice"]
        return Choice(c["label"], c["reason"], tuple(Measurement(**m) for m in c["measurements"]),
                      float(c["reference_gain_db"]), c["measured_at"], from_cache=True)
    except (KeyError, TypeError, ValueError):
        return None


def _save_choice(path: Path, key: dict, choice: Choice) -> None:
    data = {"key": key, "choice": {**dataclasses.asdict(choice), "from_cache": None}}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def mosaic(check: np.ndarray) -> np.ndarray:
    """The check crops laid side by side in one frame (1 x C x rows*h x cols*w): 24
    crops of 128 x 128 make 512 x 768, about one 854 x 480 frame. What is timed is a
    call on a frame of the size users restore: on small crops per-call costs weigh
    more, and they weigh differently per runtime and precision (measured: int8 ONNX
    Runtime was 1.6x float32 on the crops, 1.9x on 480p frames)."""
    n, c, h, w = check.shape
    cols = min(6, n)
    rows = max(1, n // cols)
    grid = check[: rows * cols].reshape(rows, cols, c, h, w)
    return np.ascontiguousarray(grid.transpose(2, 0, 3, 1, 4).reshape(1, c, rows * h, cols * w))


def measure(candidates: Sequence[Candidate], build: Callable[[Candidate], Engine],
            calibration: CalibrationSet) -> list[Measurement]:
    """Gain and time of each candidate (see the module docstring): the gain on the
    check crops, the time of a call on their mosaic (a frame of about 480p)."""
    check = calibration.check
    chunks = [check[i : i + CHUNK] for i in range(0, len(check), CHUNK)]
    frame = mosaic(check)
    entered: dict[str, Engine] = {}
    errors: dict[str, str] = {}
    outputs: dict[str, list[np.ndarray]] = {}
    times: dict[str, list[float]] = {}
    # A candidate that fails to build or to run (a broken optional package, a
    # runtime's own exception types) is dropped with its reason, not the whole choice.
    try:
        for c in candidates:
            try:
                engine = build(c)
                engine.__enter__()
            except Exception as exc:  # noqa: BLE001 - see above
                errors[c.label] = one_line(exc)
                continue
            entered[c.label] = engine
            outputs[c.label], times[c.label] = [], []
        # Round after round, candidate after candidate, so a change in the machine's
        # load hits all of them alike. The first frame call of each engine allocates
        # and picks kernels for the new shape: untimed.
        rounds = [("crops", chunk) for chunk in chunks] + [("frame", frame)] * (1 + TIMED_CALLS)
        seen_frame: set[str] = set()
        for kind, batch in rounds:
            for label, engine in list(entered.items()):
                start = time.perf_counter()
                try:
                    out = engine.infer(batch)
                except Exception as exc:  # noqa: BLE001 - see above
                    errors[label] = one_line(exc)
                    entered.pop(label).__exit__(None, None, None)
                    continue
                if kind == "crops":
                    outputs[label].append(out)
                elif label in seen_frame:
                    times[label].append(time.perf_counter() - start)
                else:
                    seen_frame.add(label)
    finally:
        for engine in entered.values():
            engine.__exit__(None, None, None)
    result = []
    for c in candidates:
        if c.label in errors:
            result.append(Measurement(c.label, error=errors[c.label]))
        else:
            gain = calibration.gain_db(np.concatenate(outputs[c.label]))
            result.append(Measurement(c.label, seconds=min(times[c.label]), gain_db=round(gain, 4)))
    return result


def measured_choice(model: CARDRN, info: ModelInfo, candidates: Sequence[Candidate],
                    build: Callable[[Candidate], Engine], *, cache_dir: Path,
                    log: Callable[[str], Any] = print, refresh: bool = False) -> Choice:
    """The cached decision for these candidates, or a new measurement (a few seconds
    to a minute, once per machine, model and set of packages)."""
    calibration = calibration_set(info)
    key = choice_key(model, candidates, calibration)
    path = _cache_path(cache_dir, info.name, key)
    cached = None if refresh else load_choice(path, key)
    if cached is not None:
        return cached
    labels = ", ".join(c.label for c in candidates)
    log(f"engine auto: timing {labels} on this CPU for model {info.name} (once; the result is cached)")
    if len(check := calibration.check) < 2 * CHUNK:
        raise ValueError(f"the check split needs at least {2 * CHUNK} crops to time, has {len(check)}")
    reference = calibration.gain_db(reference_output(model, calibration.check))
    measurements = measure(candidates, build, calibration)
    label, reason = decide(measurements, reference)
    choice = Choice(label, reason, tuple(measurements), round(reference, 4), time.strftime("%Y-%m-%d %H:%M"))
    _save_choice(path, key, choice)
    return choice


def cached_choice(model: CARDRN, info: ModelInfo, candidates: Sequence[Candidate], *,
                  cache_dir: Path) -> Choice | None:
    """The stored decision for these candidates, without measuring (for `streamfix info`)."""
    calibration = calibration_set(info)
    key = choice_key(model, candidates, calibration)
    return load_choice(_cache_path(cache_dir, info.name, key), key)
