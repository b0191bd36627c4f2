"""The work folder of a segmented run: restored pieces and the manifest that vouches for them.

    OUTPUT.pieces/            (beside the output, or --workdir)
        manifest.json         the plan and every finished piece: range, input digest,
                              options digest, file size and SHA-256
        piece-0000.mkv        restored pieces, in the output's container
        piece-0003.in.mp4     a piece's input while it is being restored
        .lock                 held while a run uses the folder

Why a manifest and hashes: a run can die anywhere, even by SIGKILL. A piece file
gets its name only when complete (the pipeline renames `.partial` files), and the
manifest records it only after that, written to a temporary file and renamed, so
whatever the crash, a recorded piece is complete. The next run reuses a piece only
if its record matches the new plan (same packets, same options) and its file still
has the recorded size and hash; everything else is redone. Only the driver writes
the manifest, so workers on other machines never race for it.

Only files named like pieces are ever deleted: a --workdir may hold other things.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from streamfix.core.digests import file_sha256
from streamfix.core.errors import OptionError, OutputError
from streamfix.core.yaml_config import to_dict
from streamfix.segments.plan import Piece

MANIFEST = "manifest.json"
VERSION = 1
PIECE_FILE = re.compile(r"^piece-\d{4}(\.|$)")
# RunConfig sections that cannot change a restored frame or its encoding.
IGNORED_OPTIONS = ("progress", "queues", "batch_timeout_ms", "scale")


def default_workdir(target: Path) -> Path:
    return target.with_name(f"{target.name}.pieces")


def options_digest(config: Any, model_file: Path | None) -> str:
    """What the restored pieces depend on besides their input: every option that can
    change a frame or its encoding, and the model's weights."""
    data = {k: v for k, v in to_dict(config).items() if k not in IGNORED_OPTIONS}
    data["model_sha256"] = file_sha256(model_file) if model_file is not None else None
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


@dataclasses.dataclass(frozen=True, slots=True)
class PieceRecord:
    """A finished piece, as the manifest records it."""

    index: int
    first_packet: int
    packets: int
    digest: str             # of the piece's input packets
    options: str            # options_digest of the run that made it
    file: str               # name inside the work folder
    bytes: int
    sha256: str
    restored: int = 0
    passed_through: int = 0
    seconds: float = 0.0
    engine: str | None = None

    def matches(self, piece: Piece, options: str) -> bool:
        return (self.index, self.first_packet, self.packets, self.digest, self.options) == (
            piece.index, piece.first_packet, piece.packets, piece.digest, options)


class WorkFolder:
    """The folder, its lock and its manifest; see the module docstring."""

    def __init__(self, path: Path, *, output_suffix: str, input_suffix: str) -> None:
        self.path = path
        self.output_suffix, self.input_suffix = output_suffix, input_suffix
        self.records: dict[int, PieceRecord] = {}
        self._plan: dict[str, Any] = {}
        self._lock: FileLock | None = None

    # --- lifetime ---------------------------------------------------------------

    def open(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{self.path}: the work folder cannot be created ({exc.strerror}); "
                              f"give another one with --workdir") from None
        self._lock = FileLock(str(self.path / ".lock"))
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise OptionError(f"{self.path}: another streamfix run is using this work folder; wait for it "
                              f"to end or give another one with --workdir") from None
        self.records = self._read_records()

    def close(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def remove(self) -> None:
        """After a successful join: delete the pieces, the manifest and the folder
        (the folder stays if something else was put in it)."""
        for path in self.path.iterdir():
            if PIECE_FILE.match(path.name) or path.name in (MANIFEST, f"{MANIFEST}.tmp"):
                path.unlink(missing_ok=True)
        self.close()
        (self.path / ".lock").unlink(missing_ok=True)
        try:
            self.path.rmdir()
        except OSError:
            pass

    # --- pieces -----------------------------------------------------------------

    def output_of(self, piece: Piece) -> Path:
        return self.path / f"{piece.name}{self.output_suffix}"

    def input_of(self, piece: Piece) -> Path:
        return self.path / f"{piece.name}.in{self.input_suffix}"

    def reusable(self, piece: Piece, options: str) -> PieceRecord | None:
        """The record of `piece` if its file is there, complete and unchanged."""
        record = self.records.get(piece.index)
        if record is None or not record.matches(piece, options):
            return None
        path = self.path / record.file
        try:
            if path.stat().st_size != record.bytes or file_sha256(path) != record.sha256:
                return None
        except OSError:
            return None
        return record

    def start(self, plan: dict[str, Any], pieces: list[Piece], options: str) -> list[Piece]:
        """Record the new plan, keep the pieces that are still good, delete every other
        piece file; returns the pieces left to restore."""
        kept = {p.index: r for p in pieces if (r := self.reusable(p, options)) is not None}
        keep_files = {r.file for r in kept.values()}
        for path in self.path.iterdir():
            if PIECE_FILE.match(path.name) and path.name not in keep_files:
                path.unlink(missing_ok=True)
        self.records = kept
        self._plan = plan
        self._write()
        return [p for p in pieces if p.index not in kept]

    def finished(self, record: PieceRecord) -> None:
        self.records[record.index] = record
        self._write()

    # --- the manifest -------------------------------------------------------------

    def _read_records(self) -> dict[int, PieceRecord]:
        try:
            data = json.loads((self.path / MANIFEST).read_text())
            if data.get("version") != VERSION:
                return {}
            return {r["index"]: PieceRecord(**r) for r in data.get("finished", [])}
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return {}  # no manifest, or a damaged one: nothing is trusted

    def _write(self) -> None:
        data = {"version": VERSION, **self._plan,
                "finished": [dataclasses.asdict(r) for _, r in sorted(self.records.items())]}
        temporary = self.path / f"{MANIFEST}.tmp"
        try:
            with open(temporary, "w") as f:
                json.dump(data, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, self.path / MANIFEST)
        except OSError as exc:
            raise OutputError(f"{self.path / MANIFEST}: cannot be written ({exc.strerror}); check free space") from None
