"""The on-disk cache of built TensorRT engines.

A build takes minutes, so an engine is built once per (model graph, TensorRT version,
GPU, precision, shapes, builder settings) and kept. Layout of the cache directory
(default `$XDG_CACHE_HOME/streamfix/tensorrt`, else `~/.cache/streamfix/tensorrt`):

    <stem>.engine   the serialized engine
    <stem>.json     its sidecar: the full key, size and sha256 of the .engine file,
                    when and how it was built (FP16 gate result, build seconds)
    <stem>.lock     taken while the engine is built or removed
    <stem>.log      the TensorRT builder log of the last build
    timing_<gpu>-sm<cc>_trt<version>.cache (+ .lock)
                    the builder's timing cache, shared by every engine of one GPU
                    and TensorRT version: later builds skip the kernel timings
                    already measured

<stem> reads as model_precision_shapes_gpu_trtversion_digest, e.g.
`video-x264-qp_fp16_1920x1080_b1-8_nvidia-h100-80gb-hbm3-sm90_trt10.13.0_3f9a0c1e2b`;
the digest covers every key field, so two keys never share a file.

Writers build under the entry's lock and publish with temp file + `os.replace`
(engine first, sidecar last: the sidecar is the commit mark), so a reader never
loads half a file. A reader trusts nothing: a missing or unreadable sidecar, a key
that does not match, an engine whose size or sha256 differs from the sidecar's (all
"stale" or "corrupt"), or an engine that TensorRT then refuses to deserialize, is
rebuilt, never loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from filelock import FileLock, Timeout

from streamfix.engines.devices import cache_root
from streamfix.engines.trt_shapes import ShapeProfile

FORMAT = "streamfix-trt-engine/1"
# A first build takes minutes; a second process waits for it rather than building the
# same engine twice. Past this, something is wrong (a hung build): say so.
LOCK_TIMEOUT_S = 3600.0
# While waiting for that lock, how often a closing engine's cancel is looked at.
CANCEL_POLL_S = 0.2


class LockWaitCancelled(RuntimeError):
    """The engine closed while waiting for another process's build."""


def default_cache_dir() -> Path:
    return cache_root() / "tensorrt"


def slug(text: str) -> str:
    """Lower-case, file-name safe: 'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3'."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-") or "unknown"


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineKey:
    """Everything an engine depends on; any change means another engine."""

    model: str  # readable name; the graph itself is identified by its hash
    onnx_sha256: str
    tensorrt: str  # "10.13.0"
    gpu: str  # "NVIDIA H100 80GB HBM3"
    compute_capability: str  # "9.0"
    precision: str  # requested: "fp16" or "fp32"
    profile: ShapeProfile
    workspace_mib: int
    opt_level: int
    min_psnr_db: float  # the FP16 gate's bar decides which variant gets built

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "onnx_sha256": self.onnx_sha256, "tensorrt": self.tensorrt,
            "gpu": self.gpu, "compute_capability": self.compute_capability, "precision": self.precision,
            "profile": self.profile.to_dict(), "workspace_mib": self.workspace_mib, "opt_level": self.opt_level,
            "min_psnr_db": self.min_psnr_db,
        }

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()

    def stem(self) -> str:
        cc = self.compute_capability.replace(".", "")
        return (f"{slug(self.model)}_{self.precision}_{self.profile.label()}_{slug(self.gpu)}-sm{cc}"
                f"_trt{self.tensorrt}_{self.digest()[:10]}")

    def timing_cache_name(self) -> str:
        cc = self.compute_capability.replace(".", "")
        return f"timing_{slug(self.gpu)}-sm{cc}_trt{self.tensorrt}.cache"


@dataclass(frozen=True, slots=True)
class Lookup:
    """What the cache holds for a key. status: hit, miss, stale (sidecar unusable or
    for another key) or corrupt (engine file missing or not what the sidecar says)."""

    status: Literal["hit", "miss", "stale", "corrupt"]
    reason: str = ""
    engine: bytes | None = None
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Built:
    """A fresh build: the serialized engine and what to record about it."""

    engine: bytes
    meta: dict


@dataclass(frozen=True, slots=True)
class Loaded:
    engine: bytes
    meta: dict
    built: bool  # False: served from the cache
    path: Path


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that no reader ever sees a partial file."""
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _key_difference(expected: dict, found: Any) -> str:
    if not isinstance(found, dict):
        return "the sidecar has no key"
    for name, value in expected.items():
        if found.get(name) != value:
            return f"{name} is {found.get(name)!r}, expected {value!r}"
    return "unexpected extra fields in the key"


class EngineCache:
    """Engines on disk, keyed by EngineKey (see the module docstring for the layout)."""

    def __init__(self, root: Path | None = None, *, lock_timeout: float = LOCK_TIMEOUT_S) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.lock_timeout = lock_timeout

    def engine_path(self, key: EngineKey) -> Path:
        return self.root / f"{key.stem()}.engine"

    def sidecar_path(self, key: EngineKey) -> Path:
        return self.root / f"{key.stem()}.json"

    def lock_path(self, key: EngineKey) -> Path:
        return self.root / f"{key.stem()}.lock"

    def log_path(self, key: EngineKey) -> Path:
        return self.root / f"{key.stem()}.log"

    def timing_cache_path(self, key: EngineKey) -> Path:
        return self.root / key.timing_cache_name()

    def lookup(self, key: EngineKey) -> Lookup:
        """Check the entry for `key` without locking (see the module docstring)."""
        sidecar = self.sidecar_path(key)
        if not sidecar.exists():
            return Lookup("miss", "not built yet")
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, ValueError) as exc:
            return Lookup("stale", f"sidecar {sidecar.name} is unreadable ({exc.__class__.__name__})")
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            return Lookup("stale", f"sidecar {sidecar.name} is not in format {FORMAT}")
        if meta.get("key") != key.as_dict():
            return Lookup("stale", f"sidecar {sidecar.name} is for another engine: "
                                   f"{_key_difference(key.as_dict(), meta.get('key'))}")
        try:
            data = self.engine_path(key).read_bytes()
        except FileNotFoundError:
            return Lookup("corrupt", "the engine file is missing")
        if len(data) != meta.get("engine_bytes"):
            return Lookup("corrupt", f"the engine file has {len(data)} bytes, the sidecar says {meta.get('engine_bytes')}")
        if sha256_bytes(data) != meta.get("engine_sha256"):
            return Lookup("corrupt", "the engine file's sha256 differs from the sidecar's")
        return Lookup("hit", engine=data, meta=meta)

    def _lock(self, key: EngineKey, log: Callable[[str], None], cancel: threading.Event | None = None) -> FileLock:
        """The entry's lock; the wait for another process gives up when `cancel` is set
        (the engine is closing: it must not wait out someone else's build)."""
        self.root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.lock_path(key)), timeout=self.lock_timeout)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            log(f"another process is building {key.stem()}; waiting for it (lock {self.lock_path(key)})")
            deadline = time.monotonic() + self.lock_timeout
            while True:
                if cancel is not None and cancel.is_set():
                    raise LockWaitCancelled(f"stopped waiting for the build lock {self.lock_path(key)}: "
                                            "the engine is closing") from None
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"gave up after {self.lock_timeout:.0f} s waiting for the build lock {self.lock_path(key)}; "
                        "if no streamfix process is building, delete that file and retry") from None
                try:
                    lock.acquire(timeout=min(CANCEL_POLL_S, left))
                    break
                except Timeout:
                    continue
        return lock

    def get_or_build(self, key: EngineKey, build: Callable[[], Built], *,
                     log: Callable[[str], None] = print, cancel: threading.Event | None = None,
                     rebuild_if: Callable[[dict], str | None] | None = None) -> Loaded:
        """The engine for `key`: from the cache when it is valid, else built by `build`
        (under the lock, so concurrent processes build it once) and stored.
        `rebuild_if(sidecar)` may name a reason to rebuild a valid entry anyway."""
        found = self.lookup(key)
        redo = rebuild_if(found.meta) if rebuild_if is not None and found.status == "hit" else None
        if found.status == "hit" and not redo:
            return Loaded(found.engine, found.meta, built=False, path=self.engine_path(key))
        lock = self._lock(key, log, cancel)
        try:
            found = self.lookup(key)  # another process may have built it while we waited
            redo = rebuild_if(found.meta) if rebuild_if is not None and found.status == "hit" else None
            if found.status == "hit" and not redo:
                return Loaded(found.engine, found.meta, built=False, path=self.engine_path(key))
            if found.status != "miss":
                log(f"TensorRT engine {key.stem()}: {redo or found.reason}; rebuilding it")
            built = build()
            meta = self._store(key, built)
            return Loaded(built.engine, meta, built=True, path=self.engine_path(key))
        finally:
            lock.release()

    def _store(self, key: EngineKey, built: Built) -> dict:
        meta = {
            **built.meta,
            "format": FORMAT,
            "key": key.as_dict(),
            "engine_file": self.engine_path(key).name,
            "engine_bytes": len(built.engine),
            "engine_sha256": sha256_bytes(built.engine),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        atomic_write(self.engine_path(key), built.engine)
        atomic_write(self.sidecar_path(key), json.dumps(meta, indent=2, sort_keys=True).encode())
        return meta

    def invalidate(self, key: EngineKey, engine_sha256: str, reason: str, *,
                   log: Callable[[str], None] = print) -> None:
        """Remove the entry whose engine (sha256 `engine_sha256`) TensorRT refused, unless
        another process has already replaced it with a different one."""
        lock = self._lock(key, log)
        try:
            current = self.lookup(key)
            if current.status == "hit" and current.meta.get("engine_sha256") != engine_sha256:
                return
            log(f"TensorRT engine {key.stem()}: {reason}; removing it so it is rebuilt")
            self.sidecar_path(key).unlink(missing_ok=True)  # sidecar first: it marks the entry valid
            self.engine_path(key).unlink(missing_ok=True)
        finally:
            lock.release()

    def read_timing_cache(self, key: EngineKey) -> bytes:
        try:
            return self.timing_cache_path(key).read_bytes()
        except FileNotFoundError:
            return b""

    def write_timing_cache(self, key: EngineKey, data: bytes) -> None:
        """Store the builder's timing cache. Last writer wins: each build starts from
        the stored cache, so what it writes back holds what it read plus its own."""
        path = self.timing_cache_path(key)
        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock", timeout=60):
            atomic_write(path, data)

    def entries(self) -> list[dict]:
        """Every sidecar in the cache (for `streamfix engine list`), each with a
        "status" of ok/corrupt/stale checked against its own recorded key."""
        found = []
        if not self.root.is_dir():
            return found
        for sidecar in sorted(self.root.glob("*.json")):
            try:
                meta = json.loads(sidecar.read_text())
            except (OSError, ValueError):
                found.append({"file": sidecar.name, "status": "stale: unreadable sidecar"})
                continue
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                found.append({"file": sidecar.name, "status": f"stale: not {FORMAT}"})
                continue
            engine = self.root / str(meta.get("engine_file", ""))
            status = "ok"
            if not engine.is_file():
                status = "corrupt: engine file missing"
            elif engine.stat().st_size != meta.get("engine_bytes"):
                status = "corrupt: size differs from sidecar"
            found.append({**meta, "file": engine.name, "status": status})
        return found
