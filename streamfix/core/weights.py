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


def _info(data: dict, path: Path | None) -> ModelInfo:
    return ModelInfo(
        name=data["name"],
        description=data["description"],
        task=data["task"],
        conditioning=data["conditioning"],
        model_args=ModelArgs.from_dict(data["model_args"]),
        trained_on=dict(data.get("trained_on", {})),
        scores=dict(data.get("scores", {})),
        path=path,
    )


def bundled_paths() -> dict[str, Path]:
    """Name -> file of every model shipped inside the package."""
    return {p.stem: p for p in sorted(WEIGHTS_DIR.glob("*.pt"))}


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
    model.load_state_dict(data["state_dict"])
    return model.eval(), info


def list_models() -> list[ModelInfo]:
    return [read_info(p) for p in bundled_paths().values()]
