"""The TensorRT engine cache: keys, invalidation, locking and atomic writes (no GPU)."""

import dataclasses
import json
import multiprocessing
import os
import threading
import time
from pathlib import Path

import pytest

from streamfix.engines.engine_cache import (
    FORMAT, Built, EngineCache, EngineKey, atomic_write, default_cache_dir, slug,
)
from streamfix.engines.trt_shapes import ShapeProfile, exact_profile

KEY = EngineKey(
    model="video-x264-qp", onnx_sha256="ab" * 32, tensorrt="10.13.0", gpu="NVIDIA H100 80GB HBM3",
    compute_capability="9.0", precision="fp16", profile=exact_profile(1080, 1920, 8),
    workspace_mib=4096, opt_level=3, min_psnr_db=45.0,
)
ENGINE = b"serialized engine \x00\x01" * 100


def built(data: bytes = ENGINE) -> Built:
    return Built(data, {"variant": "fp16", "gate": {"variant": "fp16", "steps": []}})


def _changed(field: str):
    value = getattr(KEY, field)
    if isinstance(value, ShapeProfile):
        return exact_profile(720, 1280, 8)
    if isinstance(value, str):
        return value + "x"
    return value + 1


# ids "key.<field>": a bare "gpu" id would read as the gpu marker to conftest's skip.
@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(EngineKey)],
                         ids=lambda name: f"key.{name}")
def test_every_key_field_changes_the_digest_and_the_file(field):
    other = dataclasses.replace(KEY, **{field: _changed(field)})
    assert other.digest() != KEY.digest()
    assert other.stem() != KEY.stem()


def test_file_name_is_readable():
    stem = KEY.stem()
    assert stem.startswith("video-x264-qp_fp16_1920x1080_b1-8_nvidia-h100-80gb-hbm3-sm90_trt10.13.0_")
    assert stem.endswith(KEY.digest()[:10])
    assert KEY.timing_cache_name() == "timing_nvidia-h100-80gb-hbm3-sm90_trt10.13.0.cache"
    assert slug("A/B  c") == "a-b-c"


def test_default_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "streamfix" / "tensorrt"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "streamfix" / "tensorrt"


def test_build_once_then_hit(tmp_path):
    cache = EngineCache(tmp_path)
    calls = []
    first = cache.get_or_build(KEY, lambda: calls.append(1) or built(), log=lambda line: None)
    second = cache.get_or_build(KEY, lambda: calls.append(1) or built(), log=lambda line: None)
    assert calls == [1]
    assert first.built and not second.built
    assert second.engine == ENGINE and second.path == tmp_path / f"{KEY.stem()}.engine"
    meta = json.loads((tmp_path / f"{KEY.stem()}.json").read_text())
    assert meta["format"] == FORMAT and meta["key"] == KEY.as_dict()
    assert meta["engine_bytes"] == len(ENGINE) and meta["variant"] == "fp16"
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == [
        f"{KEY.stem()}.engine", f"{KEY.stem()}.json"]


def _rebuilds_after(tmp_path, damage) -> list[str]:
    cache = EngineCache(tmp_path)
    cache.get_or_build(KEY, built, log=lambda line: None)
    damage(tmp_path / f"{KEY.stem()}.engine", tmp_path / f"{KEY.stem()}.json")
    lines: list[str] = []
    result = cache.get_or_build(KEY, lambda: built(b"fresh engine"), log=lines.append)
    assert result.built and result.engine == b"fresh engine"
    assert cache.lookup(KEY).status == "hit"
    return lines


def test_stale_sidecar_for_another_key_is_rebuilt(tmp_path):
    def other_version(engine, sidecar):
        meta = json.loads(sidecar.read_text())
        meta["key"]["tensorrt"] = "10.12.0"
        sidecar.write_text(json.dumps(meta))

    lines = _rebuilds_after(tmp_path, other_version)
    assert "tensorrt is '10.12.0', expected '10.13.0'" in lines[0] and "rebuilding" in lines[0]


def test_unreadable_sidecar_is_rebuilt(tmp_path):
    lines = _rebuilds_after(tmp_path, lambda engine, sidecar: sidecar.write_text("{not json"))
    assert "unreadable" in lines[0]


def test_truncated_engine_is_rebuilt(tmp_path):
    lines = _rebuilds_after(tmp_path, lambda engine, sidecar: engine.write_bytes(ENGINE[:10]))
    assert "10 bytes" in lines[0]


def test_same_size_but_changed_engine_is_rebuilt(tmp_path):
    lines = _rebuilds_after(tmp_path, lambda engine, sidecar: engine.write_bytes(ENGINE[::-1]))
    assert "sha256" in lines[0]


def test_missing_engine_is_rebuilt(tmp_path):
    lines = _rebuilds_after(tmp_path, lambda engine, sidecar: engine.unlink())
    assert "missing" in lines[0]


def test_invalidate_after_deserialisation_failure(tmp_path):
    cache = EngineCache(tmp_path)
    loaded = cache.get_or_build(KEY, built, log=lambda line: None)
    cache.invalidate(KEY, loaded.meta["engine_sha256"], "TensorRT refused it", log=lambda line: None)
    assert cache.lookup(KEY).status == "miss"
    assert not (tmp_path / f"{KEY.stem()}.engine").exists()


def test_invalidate_keeps_an_engine_another_process_already_replaced(tmp_path):
    cache = EngineCache(tmp_path)
    cache.get_or_build(KEY, lambda: built(b"new engine"), log=lambda line: None)
    cache.invalidate(KEY, "sha of the old engine", "TensorRT refused it", log=lambda line: None)
    assert cache.lookup(KEY).engine == b"new engine"


def test_failed_build_leaves_no_file(tmp_path):
    cache = EngineCache(tmp_path)

    def failing():
        raise RuntimeError("builder crashed")

    with pytest.raises(RuntimeError, match="builder crashed"):
        cache.get_or_build(KEY, failing, log=lambda line: None)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []
    assert cache.lookup(KEY).status == "miss"


def test_atomic_write_never_leaves_a_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "x.engine"
    atomic_write(target, b"old")

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, b"new content")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.engine"]


def test_concurrent_threads_build_once(tmp_path):
    """Two engines opening at once in one process: one build, both get it."""
    calls, results = [], []

    def slow_build():
        calls.append(1)
        time.sleep(0.3)
        return built()

    def worker():
        results.append(EngineCache(tmp_path).get_or_build(KEY, slow_build, log=lambda line: None))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert [r.engine for r in results] == [ENGINE] * 3
    assert sum(r.built for r in results) == 1


def _process_worker(root: str, marker_dir: str, queue) -> None:
    def build():
        Path(marker_dir, f"built-by-{os.getpid()}").touch()
        time.sleep(0.3)
        return built()

    loaded = EngineCache(Path(root)).get_or_build(KEY, build, log=lambda line: None)
    queue.put(loaded.engine == ENGINE)


def test_concurrent_processes_build_once(tmp_path):
    """Two streamfix processes starting on the same GPU: one builds, the other waits
    for the lock and loads the finished file (never a half-written one)."""
    ctx = multiprocessing.get_context("fork")
    markers = tmp_path / "markers"
    markers.mkdir()
    queue = ctx.Queue()
    procs = [ctx.Process(target=_process_worker, args=(str(tmp_path / "cache"), str(markers), queue))
             for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=30)
    assert [p.exitcode for p in procs] == [0, 0]
    assert [queue.get(timeout=5), queue.get(timeout=5)] == [True, True]
    assert len(list(markers.iterdir())) == 1
    assert not list((tmp_path / "cache").glob("*.tmp"))


def test_timing_cache_round_trip(tmp_path):
    cache = EngineCache(tmp_path)
    assert cache.read_timing_cache(KEY) == b""
    cache.write_timing_cache(KEY, b"timings")
    assert cache.read_timing_cache(KEY) == b"timings"
    assert cache.timing_cache_path(KEY).parent == tmp_path


def test_entries_list_every_engine_with_its_status(tmp_path):
    cache = EngineCache(tmp_path)
    other = dataclasses.replace(KEY, profile=exact_profile(720, 1280, 8))
    cache.get_or_build(KEY, built, log=lambda line: None)
    cache.get_or_build(other, built, log=lambda line: None)
    (tmp_path / f"{other.stem()}.engine").write_bytes(b"short")
    (tmp_path / "junk.json").write_text("[]")
    statuses = {e["file"]: e["status"] for e in cache.entries()}
    assert statuses == {f"{KEY.stem()}.engine": "ok", f"{other.stem()}.engine": "corrupt: size differs from sidecar",
                        "junk.json": f"stale: not {FORMAT}"}
    assert EngineCache(tmp_path / "nowhere").entries() == []
