"""What `streamfix batch` restores, and where each output goes.

Inputs are files, folders (every video and image file inside, subfolders too) and
text files of paths (`*.txt`: one path per line, relative to the list's folder;
blank lines and `#` comments are skipped). A file's output is OUT_DIR/NAME; a file
found in a folder keeps its place below that folder (OUT_DIR/sub/NAME), so two
files called clip.mp4 in different subfolders do not collide. Collisions that remain
are refused before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from streamfix.core.errors import InputError, OptionError
from streamfix.media.stills import IMAGE_SUFFIXES
from streamfix.media.containers import CONTAINER_FORMATS

MEDIA_SUFFIXES = frozenset(CONTAINER_FORMATS) | frozenset(IMAGE_SUFFIXES)
LIST_SUFFIXES = frozenset({".txt", ".list"})


@dataclass(frozen=True, slots=True)
class BatchItem:
    source: Path
    target: Path


def _is_ours(path: Path) -> bool:
    """Work folders and unfinished outputs of earlier runs are not inputs."""
    return any(part.endswith(".pieces") for part in path.parts) or ".partial." in path.name


def _listed(list_file: Path) -> list[Path]:
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{list_file}: cannot be read as a list of paths ({exc})") from None
    paths = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    return [p if p.is_absolute() else list_file.parent / p for p in map(Path, paths)]


def _expand(entry: Path, out_dir: Path) -> list[BatchItem]:
    if entry.is_dir():
        found = sorted(p for p in entry.rglob("*")
                       if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES and not _is_ours(p.relative_to(entry)))
        return [BatchItem(p, out_dir / p.relative_to(entry)) for p in found]
    if not entry.exists():
        raise InputError(f"{entry}: no such file or folder; check the path")
    return [BatchItem(entry, out_dir / entry.name)]


def collect(inputs: list[str | Path], out_dir: Path, *, suffix: str | None = None) -> list[BatchItem]:
    """Every input file with its output path; see the module docstring."""
    items: list[BatchItem] = []
    for given in map(Path, inputs):
        if given.is_file() and given.suffix.lower() in LIST_SUFFIXES:
            for listed in _listed(given):
                items += _expand(listed, out_dir)
        else:
            items += _expand(given, out_dir)
    if suffix is not None:
        suffix = suffix if suffix.startswith(".") else f".{suffix}"
        items = [BatchItem(i.source, i.target.with_suffix(suffix)) for i in items]
    seen: dict[Path, Path] = {}
    for item in items:
        if item.target.resolve() == item.source.resolve():
            raise OptionError(f"{item.source}: its output would overwrite it; choose another --out-dir")
        if item.target in seen:
            raise OptionError(f"{seen[item.target]} and {item.source} would both be written to {item.target}; "
                              f"restore them in separate batches or rename one")
        seen[item.target] = item.source
    return items
