"""The CUDA context, streams and events of the TensorRT engine: created and released
the way pycuda and the driver require (against tests/trt_standins.py, which follows
pycuda's own context code)."""

import gc
import threading

import pytest

import trt_standins
from trt_standins import SIM, context_balanced, driver_stack
from streamfix.engines.base import EngineUnavailable
from streamfix.engines.cuda_buffers import STREAM_NON_BLOCKING, CudaPipeline, PrimaryContext
from streamfix.engines.tensorrt_engine import TensorRTConfig, TensorRTEngine
from streamfix.core.weights import load_model


@pytest.fixture
def simulated_gpu(monkeypatch):
    return trt_standins.install(monkeypatch)


def test_close_leaves_no_context_pushed(simulated_gpu):
    """Bug: PrimaryContext.close() detached outside a push. pycuda then pushes the
    context and releases it with cuDevicePrimaryCtxRelease, which never pops: the
    released context stayed current on the closing thread."""
    ctx = PrimaryContext(0)
    with ctx:
        assert driver_stack() == [trt_standins.PRIMARY]
    ctx.close()
    ctx.close()  # a second close does nothing
    assert driver_stack() == [] and SIM.retains == SIM.releases == 1


def test_close_from_another_thread_releases_the_context(simulated_gpu):
    """Bug: pycuda's detach() on a thread other than the one that retained the
    context, with it not current there, releases nothing (the retain leaked)."""
    ctx = PrimaryContext(0)
    closer = threading.Thread(target=ctx.close)
    closer.start()
    closer.join()
    assert SIM.retains == SIM.releases == 1 and context_balanced()


def test_close_inside_another_contexts_push_restores_it(simulated_gpu):
    """Closing one engine's context while another's is pushed on this thread leaves
    the other current (pycuda pushes its new top again)."""
    outer, inner = PrimaryContext(0), PrimaryContext(0)
    with outer:
        inner.close()
        assert driver_stack() == [trt_standins.PRIMARY]
    outer.close()
    assert context_balanced()


def test_pipeline_close_destroys_streams_and_events_while_the_context_lives(simulated_gpu):
    """Bug: close() freed the buffers but kept the three streams (and the events), so
    they were destroyed after the context was released: pycuda warns and leaks them."""
    ctx = PrimaryContext(0)
    with ctx:
        pipe = CudaPipeline(slots=2)
        pipe.close()
        pipe.close()  # a second close does nothing
    ctx.close()
    del pipe
    gc.collect()
    assert SIM.created == SIM.destroyed == {"Stream": 3, "Event": 7}
    assert not SIM.leaks and context_balanced()


def test_streams_do_not_block_on_pytorchs_stream_and_events_neither_time_nor_spin(simulated_gpu):
    """Bug: streams were created blocking (serialized with the legacy default stream
    that PyTorch launches on) and events with timing on and the default spin-wait."""
    ctx = PrimaryContext(0)
    with ctx:
        CudaPipeline(slots=1).close()
    ctx.close()
    assert SIM.stream_flags == [STREAM_NON_BLOCKING] * 3 == [1, 1, 1]
    assert SIM.event_flags and all(flags == 1 | 2 for flags in SIM.event_flags)  # BLOCKING_SYNC | DISABLE_TIMING


def test_a_failed_enter_releases_the_context(simulated_gpu, tmp_path):
    """Bug: when creating the streams failed inside __enter__, the retained context
    was never closed (and the failure was not an EngineUnavailable)."""
    SIM.fail = {"stream"}
    model, info = load_model("video-x264-qp")
    engine = TensorRTEngine(model, info, TensorRTConfig(device="cuda", cache_dir=tmp_path), log=lambda line: None)
    with pytest.raises(EngineUnavailable, match="could not open on cuda:0: CudaMemoryError: cuStreamCreate failed"):
        engine.__enter__()
    assert SIM.retains == SIM.releases and context_balanced()


def test_the_availability_probe_releases_what_it_creates(simulated_gpu):
    from streamfix.engines.tensorrt_engine import check_available

    check_available(TensorRTConfig(device="cuda"))
    assert SIM.retains == SIM.releases == 1 and context_balanced()
