"""How a run ends: errors stop every stage and name where they happened, Ctrl-C keeps a
playable output, memory stays bounded, user stages join from YAML."""

from __future__ import annotations

import _thread
import dataclasses
import threading
import time

import pytest

import mediagen as mg
from streamfix.pipeline.pipeline import Pipeline, PipelineError, PipelineInterrupted
from streamfix.pipeline.run_config import QueueConfig, load_run_config
from streamfix.pipeline.stages import BatchContext


class Passthrough:
    """A minimal user stage: returns its frames, counts them."""

    name = "passthrough"

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.closed = False

    def open(self, video):
        return video

    def process(self, frames, context: BatchContext):
        self.seen += [d.index for d in context.decoded]
        return frames

    def close(self) -> None:
        self.closed = True


class FailAt(Passthrough):
    name = "explode"

    def __init__(self, index: int, error: BaseException) -> None:
        super().__init__()
        self.index, self.error = index, error

    def process(self, frames, context):
        if any(d.index == self.index for d in context.decoded):
            raise self.error
        return super().process(frames, context)


class Brighten(Passthrough):
    """Loaded by import path from YAML in a test below."""

    name = "brighten"
    instances: list["Brighten"] = []

    def __init__(self, amount: int) -> None:
        super().__init__()
        self.amount = amount
        Brighten.instances.append(self)


def run(source, target, config, stages, **changes):
    config = dataclasses.replace(config, **changes)
    return Pipeline(source, target, config, stages=stages, quiet=True).run()


@pytest.fixture
def clip(tmp_path):
    return mg.write_clip(tmp_path / "in.mkv", frames=12, audio=True)


def test_a_failing_stage_stops_everything_and_says_where(tmp_path, clip, cpu_config):
    stage = FailAt(3, ZeroDivisionError("boom"))
    target = tmp_path / "out.mkv"
    with pytest.raises(PipelineError) as err:
        run(clip.path, target, cpu_config, [stage], batch=1)
    error = err.value
    assert (error.stage, error.index) == ("explode", 3)
    assert isinstance(error.__cause__, ZeroDivisionError) and not error.user_error
    assert "stage 'explode' failed at frame 3: ZeroDivisionError: boom" in str(error)
    assert stage.closed
    assert not target.exists()
    # What was written before the failure is closed playable under the partial name
    # (named in the message); if nothing was, no file is left.
    if error.partial is None:
        assert list(tmp_path.glob("out*")) == []
    else:
        assert str(error.partial) in str(error) and 0 < len(mg.probe(error.partial).frame_pts) <= 3
    assert not [t for t in threading.enumerate() if t.name.startswith("streamfix-")]


def test_a_user_error_keeps_its_own_message(tmp_path, clip, cpu_config):
    from streamfix.core.errors import InputError

    stage = FailAt(0, InputError("frame 0 is not usable; try another file"))
    with pytest.raises(PipelineError) as err:
        run(clip.path, tmp_path / "out.mkv", cpu_config, [stage])
    assert err.value.user_error
    assert str(err.value).startswith("frame 0 is not usable; try another file")


def test_a_stage_returning_the_wrong_number_of_frames_is_an_error(tmp_path, clip, cpu_config):
    class Dropper(Passthrough):
        name = "dropper"

        def process(self, frames, context):
            return frames[1:]

    with pytest.raises(PipelineError, match="returned 0 frames for 1; a stage must return one frame per input"):
        run(clip.path, tmp_path / "out.mkv", cpu_config, [Dropper()], batch=1)


def test_keyboard_interrupt_keeps_every_frame_processed_so_far(tmp_path, clip, cpu_config):
    target = tmp_path / "out.mkv"
    with pytest.raises(PipelineInterrupted) as stop:
        run(clip.path, target, cpu_config, [FailAt(5, KeyboardInterrupt())], batch=1)
    result = stop.value.result
    assert result.interrupted and result.frames_out == 5
    assert target.exists()  # finished under its real name: complete up to the interruption
    out, src = mg.probe(target), mg.probe(clip.path)
    assert out.frame_times() == src.frame_times()[:5]
    assert out.stream("audio").packet_pts  # audio up to there came along


def test_ctrl_c_in_the_caller_finishes_the_output(tmp_path, clip, cpu_config):
    class CtrlC(Passthrough):
        name = "ctrl-c"

        def process(self, frames, context):
            if any(d.index == 4 for d in context.decoded):
                _thread.interrupt_main()  # what the terminal's SIGINT does
            return super().process(frames, context)

    target = tmp_path / "out.mkv"
    with pytest.raises(PipelineInterrupted) as stop:
        run(clip.path, target, cpu_config, [CtrlC()], batch=1)
    held = stop.value.result.frames_out
    assert 5 <= held <= 12
    assert mg.probe(target).frame_times() == mg.probe(clip.path).frame_times()[:held]


def test_interrupt_before_any_frame_leaves_no_output(tmp_path, clip, cpu_config):
    target = tmp_path / "out.mkv"
    with pytest.raises(PipelineInterrupted) as stop:
        run(clip.path, target, cpu_config, [FailAt(0, KeyboardInterrupt())], batch=1)
    assert stop.value.result.frames_out == 0
    assert not target.exists()


def test_the_decoder_never_runs_far_ahead_of_a_slow_stage(tmp_path, cpu_config):
    """Bounded queues: memory must not grow with the input's length."""
    clip = mg.write_clip(tmp_path / "long.mkv", frames=40)
    ahead = []

    class Slow(Passthrough):
        name = "slow"

        def process(self, frames, context):
            time.sleep(0.01)  # far slower than decoding 64x48 frames
            ahead.append(pipeline.metrics.frames_in - len(self.seen))
            return super().process(frames, context)

    queues = QueueConfig(decoded=1, batches=1, processed=1)
    pipeline = Pipeline(clip.path, tmp_path / "out.mkv", dataclasses.replace(cpu_config, batch=1, queues=queues),
                        stages=[Slow()], quiet=True)
    result = pipeline.run()
    assert result.frames_out == 40
    # In flight at most: the frame being processed, one waiting in each queue, one
    # held by the decode and one by the batch thread.
    assert max(ahead) <= 5


def test_a_user_stage_joins_from_yaml(tmp_path, clip, cpu_config):
    config_path = tmp_path / "stages.yaml"
    config_path.write_text(
        "stages:\n"
        "  - type: test_pipeline_control:Brighten\n"
        "    amount: 7\n"
        "  - {type: scale, width: 32, height: 24}\n"
    )
    config = dataclasses.replace(load_run_config(config_path), engine="torch", device="cpu",
                                 engines=cpu_config.engines, progress=cpu_config.progress)
    Brighten.instances.clear()
    Pipeline(clip.path, tmp_path / "out.mkv", config, quiet=True).run()
    (stage,) = Brighten.instances
    assert stage.amount == 7 and stage.seen == list(range(12)) and stage.closed
    assert mg.probe(tmp_path / "out.mkv").frame_sizes == [(32, 24)] * 12


def test_stats_name_the_engine_and_time_each_stage(tmp_path, cpu_config):
    clip = mg.write_clip(tmp_path / "in.mp4", frames=6, encoder_options={"crf": "40"})
    result = Pipeline(clip.path, tmp_path / "out.mp4", cpu_config, quiet=True).run()
    stats = result.to_dict()
    assert stats["engine"] == "torch" and stats["frames_out"] == 6
    assert stats["stages"]["restore"]["model"] == "video-x264-qp"
    assert {"decode", "restore", "encode"} <= set(stats["stage_seconds"])
    assert stats["fps"] > 0
