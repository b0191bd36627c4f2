"""An engine that is not trusted until it has run: TensorRT, as `choose()` returns it.

`check_available()` can only show that TensorRT loads and makes a runtime on the
GPU. Whether it can build an engine for this model, load it and run a batch shows
only when it does, minutes later. `FallbackEngine` wraps such an engine; until the
engine has served one batch itself (its `proven` attribute, or its first successful
`infer` if it has none), any failure in `__enter__` (build, deserialize) or `infer`
closes it and:

- with a next choice (`--engine auto`): opens the next engine, logs one reason
  line, and runs the same batch there, so no frame is lost or written twice;
- without one (the engine was asked for by name): raises OptionError with the
  reason, which the command line prints as one line, exit code 2.

After that first batch, failures are the engine's own and pass through unchanged.
KeyboardInterrupt and other BaseExceptions always pass through.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from streamfix.core.errors import OptionError

from streamfix.engines.base import Engine, EngineUnavailable

NextChoice = Callable[[str], Engine]  # the reason the current one failed -> the next, not entered


def failure_reason(exc: BaseException) -> str:
    """One line for a failure: EngineUnavailable's message is already written for
    users; anything else (TypeError from a nullptr factory, pycuda errors) is named."""
    text = str(exc) if isinstance(exc, EngineUnavailable) else f"{type(exc).__name__}: {exc}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


class FallbackEngine:
    def __init__(self, first: Engine, next_choice: NextChoice | None) -> None:
        self._engine = first
        self._next = next_choice
        self._entered = False
        self._trusted = False

    @property
    def name(self) -> str:
        return self._engine.name

    @property
    def device(self) -> str:
        return self._engine.device

    @property
    def engine(self) -> Engine:
        """The engine serving now."""
        return self._engine

    def __enter__(self) -> "FallbackEngine":
        try:
            self._engine.__enter__()
        except Exception as exc:  # noqa: BLE001 - any failure of an untrusted engine
            self._replace(exc, "failed to open", opened=False)
        self._entered = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._entered:
            self._entered = False
            self._engine.__exit__(None, None, None)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        if self._trusted:
            return self._engine.infer(batch)
        try:
            out = self._engine.infer(batch)
        except Exception as exc:  # noqa: BLE001 - any failure before its first batch
            self._replace(exc, "failed on its first batch", opened=True)
            return self.infer(batch)
        self._trusted = bool(getattr(self._engine, "proven", True))
        return out

    def _replace(self, exc: Exception, when: str, *, opened: bool) -> None:
        failed = self._engine.name
        reason = f"{when}: {failure_reason(exc)}"
        if opened:
            try:
                self._engine.__exit__(None, None, None)
            except Exception:  # noqa: BLE001 - closing a broken engine must not hide why it broke
                pass
        if self._next is None:
            raise OptionError(f"engine {failed} cannot be used: {reason}") from exc
        self._engine = self._next(reason)
        self._trusted = not hasattr(self._engine, "proven")
        self._engine.__enter__()
