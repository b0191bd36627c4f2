"""Tasks on a Ray cluster: `--executor ray`, with an embedded Ray on this machine by default.

Why Ray Core actors (and not Ray Data): a worker must load its engine once and
restore many pieces with it, which is what an actor is; tasks are files and pieces
with side effects on a shared filesystem and a manifest the driver writes, not rows
of a dataset; and the driver needs each piece's outcome as it ends (to record it for
resume, to join a file as soon as its last piece is in). Ray Data's `map_batches`
with an actor pool would add a dataset layer between us and exactly these things.

- One actor per worker: `num_gpus` (a fraction lets several share a GPU) and one CPU
  for decoding/encoding, or, for CPU workers, `cpus_per_worker` CPUs (inference
  threads on all but one). Ray places them on nodes with capacity; no more workers
  start than the cluster has room for (a worker waiting for room would hold its task).
- Each actor runs one task at a time; the driver gives an idle actor the next one.
- A task whose actor raised an unexpected error, or whose actor process died, is
  retried by Ray (`max_task_retries`; a dead actor is restarted, `max_restarts`);
  user errors (a bad option) come back as values and are never retried. A task
  that still fails ends with its piece and time range named.
- Frame counts reach the driver through a Ray queue, for the job's one progress bar.
- Paths travel as they are: inputs, outputs and the work folder must be on storage
  every node sees (a shared filesystem), under the same path.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any

from streamfix.core.errors import OptionError
from streamfix.segments.piece_worker import PieceWorker, TaskCrash, TaskError

POLL_S = 0.2
CONNECT_TIMEOUT_S = 5.0
INSTALL_HINT = 'Ray is not installed; pip install "streamfix[ray]" (or use --executor local)'


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise OptionError(INSTALL_HINT) from None
    return ray


def _check_reachable(address: str) -> None:
    """Ray waits minutes for a cluster that is not there; a TCP connect says so in seconds."""
    host, _, port = address.split("://")[-1].rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and the like: Ray finds the cluster itself
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise OptionError(f"--ray-address {address}: nothing answers there ({exc.strerror or exc}); "
                          f"check the address and that the Ray head node is up") from None


def connect(address: str | None, *, num_cpus: int | None = None) -> bool:
    """Join the cluster at `address`, or start Ray on this machine; True if this call
    started or joined it (and should shut it down), False if Ray was already up."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    if address:
        _check_reachable(address)
    try:
        ray.init(address=address, num_cpus=num_cpus if address is None else None, include_dashboard=False,
                 logging_level=logging.WARNING, log_to_driver=False)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = address or "this machine"
        raise OptionError(f"cannot start or reach Ray on {where} ({str(exc).splitlines()[0]}); "
                          f"check --ray-address") from None
    return True


class PieceActor:
    """What runs inside each Ray actor: a PieceWorker (its engine stays loaded)."""

    def __init__(self, device: str | None, cpu_cores: int | None, progress: Any) -> None:
        self._progress = progress
        self._worker = PieceWorker(device=device, cpu_cores=cpu_cores, log=lambda line: None)

    def run(self, task: Any) -> Any:
        def report(frames: int) -> None:
            self._progress.put_nowait(frames)

        try:
            return self._worker.run(task, report)
        except TaskError as exc:
            return exc  # the user's to fix: retrying cannot help

    def close(self) -> None:
        self._worker.close()


class RayExecutor:
    """See the module docstring. `workers` None: as many as the cluster has room for."""

    def __init__(self, workers: int | None, *, gpus_per_worker: float, cpus_per_worker: int, use_gpu: bool,
                 retries: int = 2, log: Callable[[str], None] = print) -> None:
        self.workers, self.retries, self._log = workers or 0, retries, log
        self._gpus, self._cpus, self._use_gpu = gpus_per_worker, cpus_per_worker, use_gpu

    def _resources(self) -> dict[str, Any]:
        if self._use_gpu:
            return {"num_gpus": self._gpus, "num_cpus": 1}
        return {"num_cpus": self._cpus}

    def _worker_count(self, ray: Any, tasks: int) -> int:
        total = ray.cluster_resources()
        if self._use_gpu:
            room, need = int(total.get("GPU", 0) / self._gpus), f"{self._gpus:g} GPU"
        else:
            room, need = int(total.get("CPU", 0) // self._cpus), f"{self._cpus} CPUs"
        if room < 1:
            raise OptionError(f"the Ray cluster has no room for one worker ({need} each; it has "
                              f"{total.get('CPU', 0):g} CPUs, {total.get('GPU', 0):g} GPUs); lower "
                              f"scale.cpus_per_worker / gpus_per_worker or add nodes")
        if self.workers and self.workers > room:
            self._log(f"streamfix: {self.workers} workers asked for, the Ray cluster has room for {room}")
        return min(self.workers or room, room, tasks)

    def run(self, tasks: Sequence[Any], *, done: Callable[[Any, Any], None],
            progress: Callable[[int], None] = lambda frames: None) -> None:
        ray = import_ray()
        from ray.util.queue import Queue

        frames = Queue(actor_options={"num_cpus": 0})
        actor_class = ray.remote(max_restarts=self.retries, max_task_retries=self.retries,
                                 **self._resources())(PieceActor)
        count = self._worker_count(ray, len(tasks))
        self.workers = count
        device = "cuda" if self._use_gpu else "cpu"
        cores = None if self._use_gpu else self._cpus
        actors = [actor_class.remote(device, cores, frames) for _ in range(count)]
        waiting = list(range(len(tasks)))
        running: dict[Any, tuple[Any, int]] = {}
        try:
            while waiting or running:
                idle = [a for a in actors if all(a is not held for held, _ in running.values())]
                for actor in idle[:len(waiting)]:
                    number = waiting.pop(0)
                    ref = actor.run.options(retry_exceptions=[TaskCrash]).remote(tasks[number])
                    running[ref] = (actor, number)
                ready, _ = ray.wait(list(running), num_returns=1, timeout=POLL_S)
                self._drain(frames, progress)
                for ref in ready:
                    _, number = running.pop(ref)
                    done(tasks[number], self._outcome(ray, ref, tasks[number]))
            self._drain(frames, progress)
        finally:
            for actor in actors:
                ray.kill(actor)
            frames.shutdown(force=True)

    def _outcome(self, ray: Any, ref: Any, task: Any) -> Any:
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else exc
            return TaskCrash(f"{task.describe()}: failed {self.retries + 1} times; the last time: "
                             f"{str(cause).splitlines()[0]}")
        except ray.exceptions.RayActorError as exc:
            return TaskCrash(f"{task.describe()}: its worker died {self.retries + 1} times "
                             f"({str(exc).splitlines()[0]})")

    @staticmethod
    def _drain(frames: Any, progress: Callable[[int], None]) -> None:
        counts = frames.get_nowait_batch(frames.qsize())
        if counts:
            progress(sum(counts))
