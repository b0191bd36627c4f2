"""Processing stages: what the pipeline runs on each batch of decoded frames.

A stage is any object with this shape (no base class to inherit):

    name: str
    open(video: VideoInfo) -> VideoInfo    # once, before the first batch; returns the
                                           # description of the frames it will output
    process(frames, context) -> frames     # one output frame per input frame, in order
    close() -> None                        # once, also after an error
    go_live(timing) -> None                # optional: once before the first batch in
                                           # live mode (a LiveTiming, see live.py)

`open` and `close` run in the caller's thread, `process` on the pipeline's process
thread (one batch at a time, never concurrently). `context` carries what the frames alone cannot tell:
the reader's side data for each source frame (QP map, packet size, JPEG quality) and
an optional deadline for live use.

The config lists stages in order, restore first:

    stages:
      - {type: restore}
      - {type: scale, width: 1280, height: 720}
      - {type: "mypackage.filters:Sharpen", amount: 0.3}

`type` is a built-in name, an import path "module:Class", or the name of an entry
point in the `streamfix.stages` group (how installed plugins register themselves).
The remaining keys are passed to the class as keyword arguments.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

import av

from streamfix.core.yaml_config import ConfigError, from_dict
from streamfix.media.frame_fields import copy_frame_fields
from streamfix.media.planes import reformat

ENTRY_POINT_GROUP = "streamfix.stages"  # public: plugins register under this name


@dataclass(frozen=True, slots=True)
class BatchContext:
    """What a stage knows about a batch besides its frames.

    `decoded[i]` is the reader's DecodedFrame that `frames[i]` came from (index, the
    original frame, qp_map, packet_bytes, jpeg_quality, arrival). `deadline` is a
    `time.monotonic()` time by which the batch should be done (its oldest frame's
    deadline in live mode), or None (files: no deadline). A stage that cannot make the
    deadline may return its input unchanged.
    """

    decoded: Sequence[Any]
    deadline: float | None = None


@runtime_checkable
class Stage(Protocol):
    name: str

    def open(self, video: Any) -> Any: ...

    def process(self, frames: list[av.VideoFrame], context: BatchContext) -> list[av.VideoFrame]: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ScaleOptions:
    width: int | None = None  # None keeps the input's (both None: only pix_fmt changes)
    height: int | None = None
    pix_fmt: str | None = None  # None keeps the input's
    interpolation: str = "BICUBIC"  # an av.video.reformatter.Interpolation name

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and value < 2:
                raise ValueError(f"{name} must be at least 2 pixels, got {value}")


class ScaleStage:
    """Resize and/or convert the pixel format, keeping timestamps and colour tags.

    A missing width or height keeps the aspect ratio (rounded to an even number, which
    4:2:0 encoders need).
    """

    name = "scale"

    def __init__(self, **options: Any) -> None:
        self.options = from_dict(ScaleOptions, options, "stages.scale")
        self._size: tuple[int, int] | None = None
        self._format: str | None = None

    def open(self, video: Any) -> Any:
        width, height = self.options.width, self.options.height
        if width is None and height is None:
            width, height = video.width, video.height
        elif width is None:
            width = max(2, round(video.width * height / video.height / 2) * 2)
        elif height is None:
            height = max(2, round(video.height * width / video.width / 2) * 2)
        self._size = (width, height)
        self._format = self.options.pix_fmt or video.pix_fmt
        return dataclasses.replace(video, width=width, height=height, pix_fmt=self._format)

    def process(self, frames: list[av.VideoFrame], context: BatchContext) -> list[av.VideoFrame]:
        width, height = self._size
        out = []
        for frame in frames:
            scaled = reformat(frame, width=width, height=height, format=self._format,
                              interpolation=self.options.interpolation)
            out.append(copy_frame_fields(frame, scaled))
        return out

    def close(self) -> None:
        pass


BUILTIN_STAGES: dict[str, Callable[..., Any]] = {"scale": ScaleStage}


def _import_class(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"stage {path!r}: cannot import module {module_name!r} ({exc})") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"stage {path!r}: module {module_name!r} has no {attr!r}") from None


def _stage_class(kind: str) -> Any:
    if kind in BUILTIN_STAGES:
        return BUILTIN_STAGES[kind]
    if ":" in kind:
        return _import_class(kind)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name == kind:
            return point.load()
    known = ", ".join(["restore", *BUILTIN_STAGES])
    raise ConfigError(f"unknown stage type {kind!r}: use one of {known}, an import path "
                      f"'module:Class', or an installed '{ENTRY_POINT_GROUP}' entry point")


def build_stage(spec: dict[str, Any], make_restore_stage: Callable[[], Any], where: str = "stages") -> Any:
    """One stage from its config mapping ({type: ..., options...}). The restore stage
    is made by `make_restore_stage` (the pipeline knows the Restorer; this module
    knows only the stage protocol)."""
    options = dict(spec)
    kind = options.pop("type", None)
    if not isinstance(kind, str):
        raise ConfigError(f"{where}: every stage needs a 'type' (e.g. {{type: restore}})")
    if kind == "restore":
        if options:
            raise ConfigError(f"{where}: the restore stage takes no options here (unknown key "
                              f"{sorted(options)[0]!r}); set model, engine, batch, ... at the top level")
        return make_restore_stage()
    cls = _stage_class(kind)
    try:
        stage = cls(**options)
    except ConfigError:
        raise
    except TypeError as exc:
        raise ConfigError(f"{where}: stage {kind!r} does not accept these options ({exc})") from None
    if not isinstance(stage, Stage):
        raise ConfigError(f"{where}: {kind!r} is not a stage: it needs name, open(), process() and close()")
    return stage


def build_stages(specs: Sequence[dict[str, Any]], make_restore_stage: Callable[[], Any]) -> list[Any]:
    return [build_stage(spec, make_restore_stage, f"stages[{i}]") for i, spec in enumerate(specs)]
