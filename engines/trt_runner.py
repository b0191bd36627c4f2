"""One deserialized TensorRT engine and its execution context, driven by tensor name.

TensorRT 10 removed binding indices: I/O tensors are found by name and mode, shapes
are set with `set_input_shape`, buffers with `set_tensor_address`, and the work is
queued with `execute_async_v3(stream)`. Each of those returns a bool that we check,
raising with the tensor's name, because a False here otherwise shows up later as
garbage frames. Shapes and addresses are set only when they change (the addresses
alternate between the in-flight slots).

This module needs a CUDA context current when it is called; it never allocates I/O
memory itself (cuda_buffers.py does).
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from streamfix.engines.trt_shapes import ShapeProfile
from streamfix.engines.trt_version import engine_device_memory, trt_version


class TensorRTError(RuntimeError):
    """TensorRT refused a call; the message names the call and the tensor."""


class EngineRejected(TensorRTError):
    """The serialized engine could not be loaded (another TensorRT version or GPU, a
    damaged file): the cache rebuilds it."""


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise TensorRTError(f"TensorRT refused {what}; the engine log above says why")


class TrtRunner:
    """Runs one engine with one input and one output tensor (CAR-DRN's graph)."""

    def __init__(self, trt: ModuleType, logger, engine_bytes: bytes) -> None:
        self._version = trt_version(trt)
        self._runtime = trt.Runtime(logger)
        self.engine = self._runtime.deserialize_cuda_engine(engine_bytes)
        if self.engine is None:
            raise EngineRejected("TensorRT could not deserialize the engine (built by another TensorRT "
                                 "version or for another GPU, or damaged)")
        inputs, outputs = [], []
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            mode = self.engine.get_tensor_mode(name)
            (inputs if mode == trt.TensorIOMode.INPUT else outputs).append(name)
        if len(inputs) != 1 or len(outputs) != 1:
            raise EngineRejected(f"expected one input and one output tensor, found inputs {inputs} and "
                                 f"outputs {outputs}")
        self.input, self.output = inputs[0], outputs[0]
        self.input_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.input)))
        self.output_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.output)))
        lo, opt, hi = (tuple(d) for d in self.engine.get_tensor_profile_shape(self.input, 0))
        self.profile = ShapeProfile(batch=(lo[0], opt[0], hi[0]), height=(lo[2], opt[2], hi[2]),
                                    width=(lo[3], opt[3], hi[3]))
        self.planes = int(hi[1])
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise TensorRTError("TensorRT could not create an execution context (out of GPU memory?)")
        self._shape: tuple[int, ...] | None = None
        self._addresses: dict[str, int] = {}

    @property
    def activation_bytes(self) -> int:
        return engine_device_memory(self.engine, self._version)

    def covers(self, batch: int, height: int, width: int) -> bool:
        return self.profile.covers(batch, height, width)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Set the input shape (if it changed) and return the output shape it gives."""
        if input_shape != self._shape:
            if input_shape[1] != self.planes or not self.covers(input_shape[0], *input_shape[2:]):
                raise TensorRTError(f"input {self.input!r}: shape {input_shape} is outside the engine's profile "
                                    f"{self.profile.label()} with {self.planes} planes")
            _check(self.context.set_input_shape(self.input, input_shape),
                   f"set_input_shape({self.input!r}, {input_shape})")
            self._shape = input_shape
        shape = tuple(self.context.get_tensor_shape(self.output))
        if any(d < 0 for d in shape):
            raise TensorRTError(f"output {self.output!r}: shape {shape} still unknown after setting the input shape")
        return shape

    def _set_address(self, name: str, pointer: int) -> None:
        if self._addresses.get(name) != pointer:
            _check(self.context.set_tensor_address(name, pointer), f"set_tensor_address({name!r})")
            self._addresses[name] = pointer

    def enqueue(self, input_ptr: int, output_ptr: int, stream_handle: int) -> None:
        """Queue one inference on `stream_handle` (call output_shape() first)."""
        self._set_address(self.input, input_ptr)
        self._set_address(self.output, output_ptr)
        _check(self.context.execute_async_v3(stream_handle), f"execute_async_v3 for input {self.input!r}")

    def close(self) -> None:
        # Context before engine before runtime: each holds memory the next one owns.
        self.context = None
        self.engine = None
        self._runtime = None
