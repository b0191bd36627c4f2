"""How the restored video is written when the user leaves the encoder's quality to
us (`encode.crf: auto`, the default): copied, or encoded at a CRF that fits the input.

Why: what a viewer sees is the output file, and re-encoding costs quality. Measured
(benchmarks/output.md, x264 medium over restored BasketballPass and foreman, luma
PSNR against the pristine source): the old fixed CRF 16 took 1.05-1.21 dB from an
x264 CRF 18 input (mean QP 23-24), 0.38-0.49 dB at CRF 24 (QP 29-30), 0.13-0.23 at
CRF 30 (QP 36), 0.05-0.11 at CRF 35 (QP 41), 0.03-0.04 at CRF 40 (QP 46), while the
model gains +0.2 to +1.1 dB on those inputs. The cost depends on how far the output
CRF sits below the input's quantizer: at `CRF = mean QP - 32` it stays at 0.01-0.03
dB (2-8% of the gain) from QP 35 to 50. Below QP 26 the model leaves almost every
frame alone (the clean-frame gate is 24), so the input's own video is copied
unchanged: no loss at all, and no bigger file.

So, for a file input whose quantizer can be read (H.264 QP maps, the HEVC estimate, the
VP9 and AV1 fits) from its first `PROBE_FRAMES` frames:
- mean QP under COPY_BELOW_QP, or no strength the model could use (VP8, MPEG-2:
  their frames pass through unrestored): copy the video (media/remux.py);
- otherwise: encode at CRF = clamp(round(mean QP) - CRF_BELOW_QP, MIN_CRF, MAX_CRF).

Why never CRF 0: x264 at CRF 0 is lossless, which H.264 allows only in the High 4:4:4
Predictive profile, and browsers, phones and hardware decoders do not play that. It
was the plan for every input under mean QP 33 and for most restored VP9 and AV1, at
1.4-3.9 bits per pixel. CRF 1 is High profile at about 60% of that size and costs
0.010-0.042 dB at mean QP 29-36 and on AV1 CRF 50-60 (BasketballPass, 30 frames),
against gains of +0.06 to +0.31 dB there; at mean QP 27 it took BasketballPass's
+0.040 dB to +0.003 (foreman +0.48 to +0.35). benchmarks/output.md has the table.
Pipes, network streams, custom stages or an explicit codec/bitrate/pixel format keep
the encoder the config names (crf "auto" then means FALLBACK_CRF).

Why the planned encode is tuned for fidelity (x264 `tune psnr`: no adaptive
quantization, no psychovisual rate-distortion): at a CRF this far under the input's
quantizer the output is meant to be a faithful copy of the restored frames, and
x264's perceptual tools spend bits on texture the picture does not have (psy-rd
adds it). Measured over restored frames (ONNX Runtime int8, x264 CRF 35 and 40
input, three clips; benchmarks/output.md): the re-encoding cost halves in PSNR
(BasketballPass CRF 40 input at CRF 13: 0.016 -> 0.008 dB) and in SSIM, for 3-29%
more bits at the same CRF; at equal bits (tune psnr one CRF step or more higher) it
still costs less.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from streamfix.core.options import gate_qp
from streamfix.media import endpoints
from streamfix.media.containers import container_format_for
from streamfix.media.encoder_check import valid_values
from streamfix.media.encoding import FALLBACK_CRF, EncodeConfig, codec_for
from streamfix.media.reader import open_input
from streamfix.restore.restorer import JPEG_CODECS
from streamfix.restore.strength import StreamStrength

PROBE_FRAMES = 48  # about two seconds: a few GOPs of I, P and B frames
COPY_BELOW_QP = 26.0
CRF_BELOW_QP = 32
MAX_CRF = 18
MIN_CRF = 1  # the lowest CRF whose output ordinary players decode (see above)
FIDELITY_OPTIONS = {"tune": "psnr"}  # the planned encode's options (see above), where the encoder has them


@dataclass(frozen=True, slots=True)
class OutputPlan:
    mode: str  # "copy": the input's video unchanged; "encode": restored and encoded
    crf: int | None
    mean_qp: float | None
    reason: str
    options: dict[str, str] = dataclasses.field(default_factory=dict)  # encoder options of an "encode" plan

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def applies(source: Any, target: Any, encode: EncodeConfig, *, model: Any, custom_stages: bool) -> bool:
    """Whether the plan is ours to make: crf left to us, a file in and out, the
    default encoder and stages, and a model chosen per input (a user's own model may
    restore what ours would leave alone)."""
    default = EncodeConfig()
    return (encode.crf == "auto" and encode.bitrate is None and encode.pix_fmt is None
            and encode.codec == default.codec and not encode.options and model is None and not custom_stages
            and endpoints.is_path(source) and endpoints.is_path(target) and str(source) != "-")


def only_restores(config: Any) -> bool:
    """Whether the run's stages are the default restore stage alone (a scale stage
    changes every frame: then there is nothing to copy)."""
    return [spec.get("type") for spec in config.stages] == ["restore"]


def planned(source: Any, target: Any, config: Any, *, custom_stages: bool = False) -> OutputPlan | None:
    """The plan for a run of `config` from `source` to `target`, or None where it is
    not ours to make (see `applies`) or the probe fails (the run itself then reports
    what is wrong with the input, in its own words)."""
    if not applies(source, target, config.encode, model=config.model,
                   custom_stages=custom_stages or not only_restores(config)):
        return None
    try:
        plan = plan_output(source, config.gate)
        if plan is not None and plan.mode == "encode":
            codec = codec_for(config.encode, container_format_for(target, config.output.format))
            plan = dataclasses.replace(plan, options=fidelity_options(codec))
        return plan
    except Exception:  # noqa: BLE001 - see above
        return None


def fidelity_options(codec: str) -> dict[str, str]:
    """The FIDELITY_OPTIONS `codec` is known to take (x264's; an encoder whose values
    for them cannot be listed keeps its own defaults)."""
    return {key: value for key, value in FIDELITY_OPTIONS.items() if value in (valid_values(codec, key) or ())}


def with_plan(encode: EncodeConfig, plan: OutputPlan) -> EncodeConfig:
    """`encode` set as an "encode" plan says (the plan applies only where the user
    left the options empty, so nothing of theirs is replaced)."""
    return dataclasses.replace(encode, crf=plan.crf, options=dict(plan.options))


def settle_for_pieces(source: str | Path, target: str | Path, config: Any) -> tuple[Any, OutputPlan | None]:
    """The plan for a run in pieces (streamfix/segments): made once for the whole input,
    as a single pass makes it, because every piece must be encoded alike for the join
    and a piece's own probe would see only its own frames. Returns the config the
    pieces run with (an explicit CRF where "auto" was left) and the plan: "copy" means
    the whole file is one task, which its pipeline copies."""
    if config.encode.crf != "auto":
        return config, None
    plan = planned(source, target, config)
    if plan is not None and plan.mode == "copy":
        return config, plan
    if plan is None:
        return dataclasses.replace(config, encode=dataclasses.replace(config.encode, crf=FALLBACK_CRF)), None
    return dataclasses.replace(config, encode=with_plan(config.encode, plan)), plan


def probe_mean_qp(source: str | Path, frames: int = PROBE_FRAMES) -> tuple[float | None, str, bool]:
    """(mean QP of the first `frames` frames or None when unknown, codec, is_still)."""
    with open_input(source, log=lambda message: None) as reader:
        video = reader.video
        strengths = StreamStrength(video.codec_name)
        qps: list[float] = []
        for item in reader.items():
            if not hasattr(item, "frame"):
                continue  # a packet of a copied stream
            if (qp := strengths.of(item).mean_qp) is not None:
                qps.append(qp)
            if item.index + 1 >= frames:
                break
        return (float(np.mean(qps)) if qps else None), video.codec_name, video.is_still


def copy_below(gate: str | float) -> float | None:
    """The mean QP under which the video is copied, for a `gate` setting: with the
    user's own gate, never above it (frames they want restored are restored), and
    with the gate off, never (copying is then only for codecs without a quantizer)."""
    qp = gate_qp(gate, COPY_BELOW_QP)
    return None if qp is None else min(qp, COPY_BELOW_QP)


def plan_output(source: str | Path, gate: str | float = "auto") -> OutputPlan | None:
    """The plan for `source`, or None where it is not ours to decide (stills, JPEG)."""
    mean_qp, codec, still = probe_mean_qp(source)
    threshold = copy_below(gate)
    if still or codec in JPEG_CODECS:
        return None
    if mean_qp is None:
        return OutputPlan("copy", None, None, f"{codec} exports no quantizer the model can use, so no frame "
                                              "would be restored: the input's video is copied unchanged")
    if threshold is not None and mean_qp < threshold:
        return OutputPlan("copy", None, round(mean_qp, 2),
                          f"mean QP {mean_qp:.1f} is under {threshold:g}: the input is clean enough that "
                          "restoring would gain less than re-encoding costs; its video is copied unchanged")
    crf = int(min(MAX_CRF, max(MIN_CRF, round(mean_qp) - CRF_BELOW_QP)))
    return OutputPlan("encode", crf, round(mean_qp, 2),
                      f"mean QP {mean_qp:.1f}: CRF {crf}, tuned for fidelity where the encoder can be, keeps "
                      "the re-encoding cost to about a hundredth of a dB")


def settle_output(pipeline: Any, *, custom_stages: bool, log: Callable[[str], None]) -> Any:
    """Make the plan for a Pipeline before it runs: copy the video now (returns the
    RunResult), or set the encoder's CRF in `pipeline.config` (returns None). The plan
    is kept as `pipeline.output_plan` for the result; a probe that fails leaves
    everything to the run, which reports the problem in its own words."""
    from streamfix.media.remux import CannotCopy, remux
    from streamfix.pipeline.run_result import RunResult

    config = pipeline.config
    pipeline.output_plan = None
    plan = None if pipeline.live else planned(pipeline.source, pipeline.target, config, custom_stages=custom_stages)
    if plan is None:
        return None
    if plan.mode == "copy":
        try:
            start = time.perf_counter()
            frames = remux(pipeline.source, pipeline.target, container_format=config.output.format,
                           drop_uncopyable=config.encode.drop_uncopyable, log=log)
        except CannotCopy as exc:
            # Nothing restored, nothing lost: the same promise, kept by a lossless encode.
            plan = OutputPlan("encode", 0, plan.mean_qp, f"cannot copy the video ({exc}): encoded losslessly "
                                                         f"(CRF 0) instead")
            log(f"streamfix: {plan.reason}")
        else:
            log(f"streamfix: nothing to restore: {plan.reason}")
            pipeline.output_plan = plan
            result = RunResult(input=str(pipeline.source), output=str(pipeline.target), frames_in=frames,
                               frames_out=frames, seconds=time.perf_counter() - start)
            result.stage_stats = {"restore": {"restored": 0, "passed_through": frames}}
            result.output_video = plan.to_dict()
            return result
    pipeline.config = dataclasses.replace(config, encode=with_plan(config.encode, plan))
    pipeline.output_plan = plan
    return None
