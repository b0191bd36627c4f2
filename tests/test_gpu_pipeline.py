"""The whole pipeline on a GPU with the torch engine: decode, restore on CUDA,
encode. Skipped without a GPU (tests/conftest.py) or without PyAV (the GPU machines
we test on have it only when its wheel was carried)."""

import pytest

pytest.importorskip("av", reason="PyAV is not installed")

import mediagen as mg  # noqa: E402
from streamfix.pipeline.pipeline import Pipeline  # noqa: E402
from streamfix.pipeline.run_config import ProgressConfig, RunConfig  # noqa: E402

pytestmark = pytest.mark.gpu


def test_the_pipeline_restores_a_clip_on_the_gpu(tmp_path):
    clip = mg.write_clip(tmp_path / "in.mp4", width=640, height=360, frames=24)
    config = RunConfig(engine="torch", device="cuda", batch=8, progress=ProgressConfig(mode="off"))
    result = Pipeline(str(clip.path), str(tmp_path / "out.mp4"), config, quiet=True).run()
    assert result.frames_out == 24 and result.restored == 24
    assert result.engine == "torch" and result.stage_stats["restore"]["device"].startswith("cuda")
