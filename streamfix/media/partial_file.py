"""The output's `.partial` file: created by this run alone, never through a link.

The partial name is predictable (out.mp4 is written as out.partial.mp4), so a file,
a link or a directory may already sit there: another run writing the same output
right now, an earlier run's kept incomplete output, or something planted. FFmpeg and
PIL open a path with O_CREAT|O_TRUNC and follow links: a planted link had its
target overwritten, and two runs shared one partial file, so the one that finished
first reported success for content the other was still writing. Hence:

- The partial file is created here with O_CREAT|O_EXCL|O_NOFOLLOW: it is new, it is
  ours, it is not a link. Writers write through this descriptor (`open_path`, the
  /dev/fd name of it), never through the file name.
- If the usual name is taken, the next free `out.partial-2.mp4`, `-3`, ... is used
  and one line says what was there. Nothing already there is touched.
- While writing, a run holds an advisory lock on its partial file; that is how the
  line tells "another run is writing this output now" from a left-over file.
- Renaming to the target, and removing, first check that the name still leads to
  our file (same inode), so another file is never renamed or removed in its place.

Two runs to one output thus each write their own partial file and rename it when it
is complete: the last one to finish gives the target its content, and each run's
message is about its own file.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

try:
    import fcntl
except ImportError:  # not on Windows: no locks, so the notice cannot tell a live run apart
    fcntl = None

from streamfix.core.errors import OutputError

# Enough alternatives for many parallel runs; past this, something is wrong.
MAX_ALTERNATIVES = 100
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def partial_path(target: str | Path, number: int = 1) -> Path:
    """Where the output lives until it is complete: out.mp4 -> out.partial.mp4
    (number 1), out.partial-2.mp4, ..."""
    target = Path(target)
    tag = "partial" if number == 1 else f"partial-{number}"
    return target.with_name(f"{target.stem}.{tag}{target.suffix}")


def _what_is_there(path: Path) -> str:
    """How the notice describes what occupies a partial name."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return "something"
    if stat.S_ISLNK(mode):
        return "a symbolic link (left alone, not followed)"
    if stat.S_ISDIR(mode):
        return "a directory"
    if not stat.S_ISREG(mode):
        return "a special file"
    if fcntl is not None:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return "a file"
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return ("the file another run is writing to the same output right now (the run that finishes "
                    "last decides what the output holds)")
        finally:
            os.close(fd)
        return "an earlier run's incomplete output (kept as it is)"
    return "a file (another run's, or an earlier run's incomplete output; kept as it is)"


class PartialFile:
    """This run's partial file for `target`; `note` is the line to tell the user when
    the usual name was taken (None otherwise)."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.note: str | None = None
        self._fd: int | None = None
        for number in range(1, MAX_ALTERNATIVES + 1):
            path = partial_path(target, number)
            try:
                self._fd = os.open(path, _FLAGS, 0o666)
            except FileExistsError:
                continue
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.EISDIR):  # a link or directory (some systems)
                    continue
                raise OutputError(f"{target}: cannot create {path} ({exc.strerror}); check the directory's "
                                  f"permissions and free space") from None
            break
        else:
            raise OutputError(f"{target}: {partial_path(target)} and {MAX_ALTERNATIVES - 1} alternatives "
                              f"are all taken; remove the old .partial files next to it")
        self.path = path
        self._identity = self._stat_identity(os.fstat(self._fd))
        if fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else holds it
        if number > 1:
            first = partial_path(target)
            self.note = (f"streamfix: {first} is {_what_is_there(first)}; "
                         f"writing {path.name} until the output is complete")

    @staticmethod
    def _stat_identity(st: os.stat_result) -> tuple[int, int]:
        return st.st_dev, st.st_ino

    @property
    def open_path(self) -> str:
        """A name that opens this very file, whatever happens to its path meanwhile."""
        fd_dir = Path("/dev/fd")
        return str(fd_dir / str(self._fd)) if fd_dir.is_dir() else str(self.path)

    def is_ours(self) -> bool:
        """Whether `path` still names the file this run created."""
        try:
            return self._stat_identity(os.lstat(self.path)) == self._identity
        except OSError:
            return False

    def rename_to_target(self) -> None:
        """Give the complete file its final name (replacing whatever had it)."""
        if not self.is_ours():
            raise OutputError(f"{self.target}: {self.path} was replaced or removed while it was written; "
                              f"the output is not complete anywhere, run again")
        try:
            os.replace(self.path, self.target)
        except OSError as exc:
            raise OutputError(f"{self.target}: the finished output could not take its name ({exc.strerror}); "
                              f"it is complete at {self.path}") from None
        finally:
            self.close()

    def remove(self) -> None:
        """Delete the partial file if it is still ours (an empty or useless start)."""
        if self.is_ours():
            self.path.unlink(missing_ok=True)
        self.close()

    def close(self) -> None:
        """Release the descriptor and the lock; the file stays where it is."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
