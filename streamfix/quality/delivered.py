"""What a viewer gets: the output of a real `streamfix run`, with the default output
encoder, measured against the pristine source.

`streamfix eval` restores decoded frames in memory, which is what a lossless output
would hold. A user's file is re-encoded (or, when nothing needed restoring, copied)
by the output plan (pipeline/output_plan.py), and re-encoding costs quality, so the
report gives both figures: the model's gain ("lossless output") and the gain that
reaches the viewer ("default output"). The run here is the product's own Pipeline on
the same compressed file, with the same model options and the default encoder.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import av
import numpy as np

from streamfix.media.planes import plane_to_array
from streamfix.pipeline.pipeline import Pipeline
from streamfix.pipeline.run_config import ProgressConfig, RunConfig
from streamfix.quality.measures import all_metrics

# Restorer options (streamfix eval's) that are RunConfig fields of the same name.
RUN_FIELDS = ("model", "engine", "precision", "chroma", "tier", "gate", "device")


def run_config_for(options: dict[str, Any]) -> RunConfig:
    """A default RunConfig with eval's model options: what `streamfix run` uses."""
    given = {k: v for k, v in options.items() if k in RUN_FIELDS and v is not None}
    return dataclasses.replace(RunConfig(progress=ProgressConfig(mode="off")), **given)


def delivered(compressed: Path, references: list[np.ndarray], options: dict[str, Any],
              out_dir: Path) -> dict[str, Any]:
    """Run `compressed` through the pipeline with the default output and compare the
    output's luma, frame by frame, with `references`: per-frame metrics, and how the
    output video was written (`output_video`: copy, or encode at a CRF)."""
    target = Path(out_dir) / f"{compressed.stem}.delivered.mp4"
    result = Pipeline(compressed, target, run_config_for(options), quiet=True, log=lambda line: None).run()
    with av.open(str(target)) as container:
        lumas = [plane_to_array(f, 0) for f in container.decode(video=0)]
    if len(lumas) != len(references):
        raise RuntimeError(f"{target}: {len(lumas)} frames delivered for {len(references)} source frames")
    return {"metrics": [all_metrics(ref, out) for ref, out in zip(references, lumas)],
            "output_video": result.output_video}
