"""Optimization profiles: which batch sizes and frame sizes an engine accepts.

A TensorRT engine with dynamic shapes accepts any input between a profile's min and
max, and is tuned for its opt. We build one engine per stream resolution:

- height and width are pinned to the stream's (min = opt = max), because kernels
  chosen for exactly one size are the fastest, the activation memory is sized for
  exactly that frame, and a stream keeps its resolution (the pipeline refuses a
  mid-stream change);
- batch runs from 1 to `max_batch` with opt = max_batch: the pipeline sends full
  batches while frames keep coming, and partial ones only when it flushes on a
  timeout or at the end, so the full batch is the case worth tuning for.

The cost is one build (minutes, once per GPU, cached) per new resolution. A range
profile ("64x64-1920x1088") trades some speed and more memory for one engine that
accepts every size in the range, e.g. for tiles or sources of many sizes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_SIDE = 16384  # TensorRT's own limit on a dimension is far above any video frame

_SIZE = r"(\d+)x(\d+)"
_RANGE = re.compile(rf"^{_SIZE}(?:-{_SIZE})?$")


@dataclass(frozen=True, slots=True)
class ShapeProfile:
    """min/opt/max of batch, height and width for one optimization profile."""

    batch: tuple[int, int, int]
    height: tuple[int, int, int]
    width: tuple[int, int, int]

    def __post_init__(self) -> None:
        for name in ("batch", "height", "width"):
            lo, opt, hi = getattr(self, name)
            if not 1 <= lo <= opt <= hi <= MAX_SIDE:
                raise ValueError(f"{name} profile {lo}/{opt}/{hi} must satisfy 1 <= min <= opt <= max <= {MAX_SIDE}")

    def covers(self, batch: int, height: int, width: int) -> bool:
        return (self.batch[0] <= batch <= self.batch[2] and self.height[0] <= height <= self.height[2]
                and self.width[0] <= width <= self.width[2])

    @property
    def is_exact(self) -> bool:
        """True when the profile pins one frame size."""
        return self.height[0] == self.height[2] and self.width[0] == self.width[2]

    def dims(self, planes: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) NCHW input shapes for `planes` input planes."""
        return tuple((self.batch[i], planes, self.height[i], self.width[i]) for i in range(3))  # type: ignore[return-value]

    def label(self) -> str:
        """Readable, file-name safe: '1920x1080_b1-8' or '64x64-1920x1088_b1-8'."""
        size = f"{self.width[2]}x{self.height[2]}"
        if not self.is_exact:
            size = f"{self.width[0]}x{self.height[0]}-{size}"
        return f"{size}_b{self.batch[0]}-{self.batch[2]}"

    def to_dict(self) -> dict:
        return {"batch": list(self.batch), "height": list(self.height), "width": list(self.width)}

    @classmethod
    def from_dict(cls, data: dict) -> "ShapeProfile":
        return cls(batch=tuple(data["batch"]), height=tuple(data["height"]), width=tuple(data["width"]))


def exact_profile(height: int, width: int, max_batch: int) -> ShapeProfile:
    """The profile for one stream resolution: batch 1..max_batch, tuned for max_batch."""
    return ShapeProfile(batch=(1, max_batch, max_batch), height=(height,) * 3, width=(width,) * 3)


def parse_shapes(text: str, max_batch: int) -> tuple[ShapeProfile, ...]:
    """'1920x1080,1280x720' (exact sizes, WxH) or '64x64-1920x1088' (a range, tuned for
    its largest size) -> profiles with batch 1..max_batch."""
    profiles = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        match = _RANGE.match(item)
        if match is None:
            raise ValueError(f"bad shape {item!r}: write WIDTHxHEIGHT (1920x1080) or a range (64x64-1920x1088)")
        w0, h0, w1, h1 = match.groups()
        if w1 is None:
            profiles.append(exact_profile(int(h0), int(w0), max_batch))
            continue
        lo_h, lo_w, hi_h, hi_w = int(h0), int(w0), int(h1), int(w1)
        if lo_h > hi_h or lo_w > hi_w:
            raise ValueError(f"bad shape range {item!r}: the first size must not be larger than the second")
        profiles.append(ShapeProfile(batch=(1, max_batch, max_batch), height=(lo_h, hi_h, hi_h),
                                     width=(lo_w, hi_w, hi_w)))
    return tuple(profiles)


def pick_profile(profiles: list[ShapeProfile] | tuple[ShapeProfile, ...], batch: int, height: int,
                 width: int) -> ShapeProfile | None:
    """The profile to run a batch with: an exact one for this size if any (fastest),
    else the covering range with the smallest maximum frame (least memory), else None."""
    covering = [p for p in profiles if p.covers(batch, height, width)]
    if not covering:
        return None
    exact = [p for p in covering if p.is_exact]
    if exact:
        return exact[0]
    return min(covering, key=lambda p: (p.height[2] * p.width[2], p.label()))
