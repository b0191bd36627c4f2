"""The worker-thread toolkit every part of streamfix runs its threads on: waits wake on
stop, a result already delivered is kept, and a failure reaches the waiting thread
naming where it happened."""

from __future__ import annotations

import queue
import threading

import pytest

from streamfix.core.errors import OptionError
from streamfix.core.threads import Control, Failure, Stopped, Worker, WorkerError


def test_queue_operations_and_waits_wake_on_stop():
    control = Control()
    full, empty = queue.Queue(1), queue.Queue()
    full.put("x")
    outcomes = []

    def blocked(operation):
        try:
            operation()
        except Stopped:
            outcomes.append("stopped")

    threads = [threading.Thread(target=blocked, args=(op,)) for op in (
        lambda: control.put(full, "y"),
        lambda: control.get(empty),
        lambda: control.wait(threading.Event().wait),
    )]
    for thread in threads:
        thread.start()
    control.stop.set()
    for thread in threads:
        thread.join(timeout=10)
    assert outcomes == ["stopped"] * 3


def test_a_wait_that_is_ready_returns_even_when_a_stop_came_with_it():
    control = Control()
    done = threading.Event()
    done.set()
    control.stop.set()
    control.wait(done.wait)  # no Stopped: the result is there to be taken


def test_a_worker_failure_is_recorded_with_its_stage_and_frame_and_stops_the_others():
    control = Control()

    def body(worker: Worker) -> None:
        worker.index = 7
        raise ZeroDivisionError("inside the model")

    Worker("restore", body, control).start().thread.join(timeout=10)
    assert control.stop.is_set()
    error = control.failure.caller_error()
    assert isinstance(error, WorkerError) and (error.stage, error.index) == ("restore", 7)
    assert str(error) == "stage 'restore' failed at frame 7: ZeroDivisionError: inside the model"
    assert isinstance(error.__cause__, ZeroDivisionError)


def test_a_user_error_reaches_the_caller_as_it_is():
    """Its one-line message already says what to do; wrapping it would bury that line."""
    original = OptionError("engine tensorrt cannot be used: no GPU")
    assert Failure("restore", 0, original).caller_error() is original
    with pytest.raises(OptionError):
        raise Failure("restore", 0, original).caller_error()
