"""The `scale:` section of a run config: segment-parallel runs and who runs the pieces.

Its own module because RunConfig (run_config.py) holds it, while the code that
reads it lives above the pipeline (streamfix/segments cuts and reassembles a file,
streamfix/fleet runs the pieces on local processes or a Ray cluster).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True, kw_only=True)
class ScaleConfig:
    # Cut the input at keyframes into pieces of at least this many seconds, restore
    # them in parallel and join them by stream copy; null: one pass, no pieces.
    segment_seconds: float | None = None
    # Workers restoring pieces; null: one per GPU share (gpus_per_worker) on GPUs,
    # else one per cpus_per_worker cores of this machine or of the Ray cluster.
    workers: int | None = None
    executor: Literal["local", "ray"] = "local"  # local: processes on this machine; ray: a Ray cluster
    ray_address: str | None = None  # null: start a Ray of our own on this machine; e.g. ray://head:10001
    gpus_per_worker: float = 1.0  # GPU share of one worker (0.5: two workers per GPU)
    # Cores one CPU worker holds: inference threads on all but one, which decodes and
    # encodes (with 1, everything shares that core).
    cpus_per_worker: int = 2
    retries: int = 2  # attempts after the first for a piece whose worker failed or died
    workdir: str | None = None  # pieces and manifest; null: OUTPUT.pieces beside the output
    keep_pieces: bool = False  # keep the work folder after a successful join

    def __post_init__(self) -> None:
        if self.segment_seconds is not None and not 0 < self.segment_seconds < math.inf:
            raise ValueError(f"scale.segment_seconds must be a positive number of seconds, got {self.segment_seconds}")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"scale.workers must be 1 or more, got {self.workers}")
        if not 0 < self.gpus_per_worker <= 1:
            raise ValueError(f"scale.gpus_per_worker must be more than 0 and at most 1, got {self.gpus_per_worker}")
        if self.cpus_per_worker < 1:
            raise ValueError(f"scale.cpus_per_worker must be 1 or more, got {self.cpus_per_worker}")
        if self.retries < 0:
            raise ValueError(f"scale.retries must be 0 or more, got {self.retries}")
