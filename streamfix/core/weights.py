"""The weights file format, the bundled models, and rebuilding a model from a file.

A weights file is a `torch.save`d flat dict (loadable with `weights_only=True`):

    format        "streamfix-weights/1"
    name          short name, e.g. "jpeg-y-q10"
    description   one line for `streamfix info`
    task          "jpeg" or "video": what kind of input it is meant for
    conditioning  how the extra input plane is made (see CONDITIONINGS), or "none"
    model_args    ModelArgs as a dict: enough to rebuild the network
    trained_on    degradation, quality range, steps, data folders, seconds, ...
    scores        measured results (set, setting -> PSNR/SSIM/PSNR-B)
    state_dict    BN-folded parameters (inference only; training checkpoints are
                  separate files that keep BN and optimiser state)

Bundled files live in `streamfix/weights/` inside the package, so a plain install can
restore without downloading anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from streamfix.core.errors import StreamfixError
from streamfix.core.network import CARDRN, ModelArgs, fold_batchnorm

FORMAT = "streamfix-weights/1"
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"  # streamfix/weights (package data)

# Conditioning planes and what they hold. Values are scaled to about [0, 1].
CONDITIONINGS = {
    "none": "no extra plane: a blind model",
    "jpeg_quality": "a constant plane of JPEG quality / 100, read from the file's tables",
    "qp": "the decoder's per-16x16-block quantizer / 51, upsampled to pixels",
}
JPEG_QUALITY_SCALE = 100.0
QP_SCALE = 51.0


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A loaded weights file, minus the parameters."""

    name: str
    description: str
    task: str
    conditioning: str
    model_args: ModelArgs
    trained_on: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


class ModelNotFound(StreamfixError, LookupError):
    pass


def save_weights(
    path: str | Path,
    model: CARDRN,
    *,
    name: str,
    description: str,
    task: str,
    conditioning: str,
    trained_on: dict[str, Any],
    scores: dict[str, Any] | None = None,
) -> None:
    """Write an inference weights file (BN folded) for `model`."""
    if conditioning not in CONDITIONINGS:
        raise ValueError(f"unknown conditioning {conditioning!r}; known: {sorted(CONDITIONINGS)}")
    if (conditioning == "none") != (model.args.cond_channels == 0):
        raise ValueError("conditioning and model_args.cond_channels disagree")
    folded = fold_batchnorm(model)
    data = {
        "format": FORMAT,
        "name": name,
        "description": description,
        "task": task,
        "conditioning": conditioning,
        "model_args": folded.args.to_dict(),
        "trained_on": trained_on,
        "scores": scores or {},
        "state_dict": {k: v.detach().cpu().clone() for k, v in folded.state_dict().items()},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(data, tmp)
    tmp.replace(path)


def _read(path: Path) -> dict:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelNotFound(f"weights file not found: {path}") from None
    except Exception as exc:  # torch raises several unrelated types for bad files
        raise ModelNotFound(f"{path} is not a streamfix weights file ({exc.__class__.__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelNotFound(f"{path} is not a streamfix weights file (format {FORMAT} expected)")
    return data


# What a weights file may ask for. A file is data from anywhere: its model_args are
# checked against these bounds before anything is built, so a damaged or hostile file
# cannot make us allocate gigabytes (a 10^6-feature layer would be terabytes).
ARG_BOUNDS = {"channels": (1, 3), "cond_channels": (0, 4), "features": (1, 512), "mid_features": (1, 512),
              "dilation": (1, 8)}
CONDITIONINGS = ("none", "jpeg_quality", "qp")
TASKS = ("jpeg", "video")


def _info(data: dict, path: Path | None) -> ModelInfo:
    where = path or "weights"

    def text(key: str, allowed: tuple[str, ...] | None = None) -> str:
        value = data.get(key)
        if not isinstance(value, str) or (allowed is not None and value not in allowed):
            expected = f"one of {', '.join(allowed)}" if allowed else "a text"
            raise ModelNotFound(f"{where} is not a usable streamfix weights file: {key!r} must be {expected}, "
                                f"got {value!r}")
        return value

    args = data.get("model_args")
    try:
        model_args = ModelArgs.from_dict(args if isinstance(args, dict) else {})
    except (TypeError, ValueError) as exc:
        raise ModelNotFound(f"{where} is not a usable streamfix weights file: bad model_args ({exc})") from None
    for key, (low, high) in ARG_BOUNDS.items():
        value = getattr(model_args, key)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ModelNotFound(f"{where} is not a usable streamfix weights file: model_args.{key} must be "
                                f"a whole number from {low} to {high}, got {value!r}")
    if not isinstance(model_args.slope, (int, float)) or not isinstance(model_args.batch_norm, bool):
        raise ModelNotFound(f"{where} is not a usable streamfix weights file: model_args.slope must be a "
                            "number and model_args.batch_norm true or false")
    conditioning = text("conditioning", CONDITIONINGS)
    if (conditioning == "none") != (model_args.cond_channels == 0):
        raise ModelNotFound(f"{where} is not a usable streamfix weights file: conditioning {conditioning!r} "
                            f"with {model_args.cond_channels} conditioning planes")
    return ModelInfo(
        name=text("name"),
        description=str(data.get("description", "")),
        task=text("task", TASKS),
        conditioning=conditioning,
        model_args=model_args,
        trained_on=dict(data.get("trained_on") or {}),
        scores=dict(data.get("scores") or {}),
        path=path,
    )


def _check_state(state: Any, model: CARDRN, where: Path) -> None:
    """Every parameter present, with the shape `model` expects (one clear line if not)."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelNotFound(f"{where} is not a usable streamfix weights file: no tensor state_dict")
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(state[k].shape) != expected[k])
    if missing or extra or wrong:
        detail = (f"missing {missing[0]}" if missing else f"unexpected {extra[0]}" if extra
                  else f"{wrong[0]} has shape {tuple(state[wrong[0]].shape)}, the model_args need {expected[wrong[0]]}")
        raise ModelNotFound(f"{where} does not match its own model_args ({detail})")


def bundled_paths() -> dict[str, Path]:
    """Name -> file of every model shipped inside the package, by name (a full model
    before its NAME-lite: sorting the file names would put "-lite.pt" first)."""
    return {p.stem: p for p in sorted(WEIGHTS_DIR.glob("*.pt"), key=lambda p: p.stem)}


def resolve(name_or_path: str | Path) -> Path:
    """A bundled model name or a path to a weights file -> the file's path."""
    bundled = bundled_paths()
    if str(name_or_path) in bundled:
        return bundled[str(name_or_path)]
    path = Path(name_or_path)
    if path.suffix == ".pt" or path.exists():
        if not path.is_file():
            raise ModelNotFound(f"weights file not found: {path}")
        return path
    known = ", ".join(bundled) or "(none bundled)"
    raise ModelNotFound(f"no model named {name_or_path!r}; bundled models: {known}")


def read_info(name_or_path: str | Path) -> ModelInfo:
    path = resolve(name_or_path)
    return _info(_read(path), path)


def load_model(name_or_path: str | Path) -> tuple[CARDRN, ModelInfo]:
    """Rebuild the network of a weights file, in eval mode, on the CPU."""
    path = resolve(name_or_path)
    data = _read(path)
    info = _info(data, path)
    model = CARDRN(info.model_args)
    _check_state(data.get("state_dict"), model, path)
    model.load_state_dict(data["state_dict"])
    return model.eval(), info


def list_models() -> list[ModelInfo]:
    return [read_info(p) for p in bundled_paths().values()]
