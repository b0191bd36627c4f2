"""What the TensorRT build decides without a GPU: profiles, version gates, the FP16
gate's ladder, and the mixed-precision graphs it builds (checked through ONNX Runtime)."""

import math
from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from streamfix.engines import fp16_gate
from streamfix.engines.fp16_gate import (
    GateFailed, ladder, output_psnr, passes, reference_output, run_gate, sample_frames,
)
from streamfix.engines.onnx_export import export_onnx
from streamfix.engines.onnx_mixed_precision import keep_fp32, tail_nodes, with_fp32_tail
from streamfix.engines.trt_shapes import ShapeProfile, exact_profile, parse_shapes, pick_profile
from streamfix.engines.trt_version import (
    engine_device_memory, network_flags, parse_version, unsupported_reason,
)
from streamfix.core.network import CARDRN, ModelArgs

torch.set_num_threads(1)
FLOAT, FLOAT16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16


# -- shape profiles -----------------------------------------------------------------
def test_exact_profile_pins_the_frame_and_tunes_for_full_batches():
    p = exact_profile(1080, 1920, 8)
    assert p.batch == (1, 8, 8) and p.height == (1080,) * 3 and p.width == (1920,) * 3
    assert p.dims(2) == ((1, 2, 1080, 1920), (8, 2, 1080, 1920), (8, 2, 1080, 1920))
    assert p.label() == "1920x1080_b1-8" and p.is_exact
    assert p.covers(1, 1080, 1920) and p.covers(8, 1080, 1920)
    assert not p.covers(9, 1080, 1920) and not p.covers(1, 1080, 1921)


def test_parse_shapes_exact_and_ranges():
    exact, ranged = parse_shapes("1920x1080, 64x48-1280x720", 4)
    assert exact == exact_profile(1080, 1920, 4)
    assert ranged.height == (48, 720, 720) and ranged.width == (64, 1280, 1280)
    assert ranged.label() == "64x48-1280x720_b1-4" and not ranged.is_exact
    assert parse_shapes("", 4) == ()
    assert ShapeProfile.from_dict(ranged.to_dict()) == ranged


@pytest.mark.parametrize("text", ["1920", "1920x", "axb", "1280x720-64x48", "0x10"])
def test_parse_shapes_refuses_bad_text(text):
    with pytest.raises(ValueError):
        parse_shapes(text, 4)


def test_pick_profile_prefers_exact_then_the_smallest_range():
    small, large = parse_shapes("16x16-640x480,16x16-1920x1088", 8)
    exact = exact_profile(480, 640, 8)
    assert pick_profile([large, small, exact], 2, 480, 640) == exact
    assert pick_profile([large, small], 2, 480, 640) == small
    assert pick_profile([large, small], 2, 1080, 1920) == large
    assert pick_profile([large, small], 9, 480, 640) is None
    assert pick_profile([], 1, 10, 10) is None


# -- version gates ------------------------------------------------------------------
FAKE_TRT = SimpleNamespace(NetworkDefinitionCreationFlag=SimpleNamespace(STRONGLY_TYPED=1))


@pytest.mark.parametrize("text,expected", [("10.13.0.35", (10, 13, 0)), ("11.0", (11, 0, 0)), ("9", (9, 0, 0))])
def test_parse_version(text, expected):
    assert parse_version(text) == expected


def test_strongly_typed_flag_is_set_on_10_only():
    assert network_flags(FAKE_TRT, (10, 13, 0)) == 1 << 1
    assert network_flags(FAKE_TRT, (11, 4, 0)) == 0


def test_device_memory_property_by_version():
    engine = SimpleNamespace(device_memory_size=7, device_memory_size_v2=9)
    assert engine_device_memory(engine, (10, 0, 1)) == 7
    assert engine_device_memory(engine, (10, 1, 0)) == 9
    assert engine_device_memory(SimpleNamespace(device_memory_size_v2=9), (11, 0, 0)) == 9


def test_old_tensorrt_is_refused_in_one_line():
    reason = unsupported_reason((8, 6, 1))
    assert "8.6.1 is too old" in reason and "\n" not in reason
    assert unsupported_reason((10, 0, 0)) is None and unsupported_reason((11, 4, 0)) is None
    assert "12.0.0 is newer than this streamfix supports" in unsupported_reason((12, 0, 0))


# -- the FP16 gate's decisions --------------------------------------------------------
def test_ladder():
    assert ladder("fp16") == ["fp16", "fp16-tail1", "fp16-tail3", "fp32"]
    assert ladder("fp32") == ["fp32"]
    with pytest.raises(ValueError):
        ladder("int8")


def test_passes_at_the_bar_and_never_on_nan():
    assert passes(45.0) and passes(math.inf) and not passes(44.99) and not passes(math.nan)


def _gate(psnrs: dict[str, float], precision: str = "fp16"):
    tried, lines = [], []

    def try_variant(variant):
        tried.append(variant)
        return psnrs[variant], f"engine-{variant}"

    return run_gate(ladder(precision), try_variant, log=lines.append), tried, lines


def test_gate_accepts_fp16_when_it_is_accurate():
    result, tried, lines = _gate({"fp16": 52.0})
    assert result.variant == "fp16" and result.payload == "engine-fp16" and tried == ["fp16"]
    assert "accepted" in lines[0]


def test_gate_keeps_the_tail_in_fp32_when_fp16_is_not_enough():
    result, tried, lines = _gate({"fp16": 41.3, "fp16-tail1": 47.0})
    assert result.variant == "fp16-tail1" and tried == ["fp16", "fp16-tail1"]
    assert "41.3 dB" in lines[0] and "rebuilding as fp16-tail1" in lines[0]
    assert result.as_dict() == {"variant": "fp16-tail1", "steps": [
        {"variant": "fp16", "psnr_db": 41.3, "passed": False},
        {"variant": "fp16-tail1", "psnr_db": 47.0, "passed": True}]}


def test_gate_falls_back_to_fp32_and_records_nan_as_text():
    result, tried, _ = _gate({"fp16": math.nan, "fp16-tail1": 40.0, "fp16-tail3": 44.0, "fp32": math.inf})
    assert result.variant == "fp32" and tried == ladder("fp16")
    assert result.as_dict()["steps"][0]["psnr_db"] == "nan" and result.as_dict()["steps"][-1]["psnr_db"] == "inf"


def test_gate_failure_says_what_to_do():
    with pytest.raises(GateFailed, match="fp32 30.0 dB.*--engine onnxruntime"):
        _gate({"fp32": 30.0}, precision="fp32")


def test_output_psnr_is_the_worst_frame():
    ref = np.full((2, 1, 8, 8), 0.5, np.float32)
    test = ref.copy()
    test[1] += 1 / 255  # one code value everywhere: 48.13 dB
    assert output_psnr(ref, test) == pytest.approx(20 * math.log10(255), abs=1e-3)
    assert output_psnr(ref, ref) == math.inf
    test[0, 0, 0, 0] = np.nan
    assert math.isnan(output_psnr(ref, test))
    clipped = ref + 2.0  # both sides are clipped to [0, 1] as the pipeline does
    assert output_psnr(np.ones_like(ref), clipped) == math.inf


def test_sample_frames_are_deterministic_and_in_range():
    a = sample_frames(2, 1, 37, 53, count=2)
    assert a.shape == (2, 2, 37, 53) and a.dtype == np.float32
    assert np.array_equal(a, sample_frames(2, 1, 37, 53, count=2))
    assert 0 <= a[:, 0].min() and a[:, 0].max() <= 1 and np.all(a[:, 1] == np.float32(0.6))
    assert a[0, 0].std() > 0.05  # real content, not a flat plane


# -- mixed-precision graphs, run through ONNX Runtime --------------------------------
@pytest.fixture(scope="module")
def trained_like():
    """A CAR-DRN with non-trivial weights everywhere (the untrained one is the identity)."""
    torch.manual_seed(0)
    model = CARDRN(ModelArgs(channels=1, cond_channels=1)).eval()
    with torch.no_grad():
        model.reconstruct.weight.normal_(0, 0.05)
    return model


@pytest.fixture(scope="module")
def fp16_graph(trained_like, tmp_path_factory):
    path = export_onnx(trained_like, tmp_path_factory.mktemp("onnx") / "m16.onnx", fp16=True)
    return onnx.load(str(path))


def _run(graph: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(graph.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def test_tail_nodes_of_car_drn(fp16_graph):
    assert tail_nodes(fp16_graph, 0) == []
    one = tail_nodes(fp16_graph, 1)
    assert [n.split("/")[-1] for n in one] == ["Slice", "Conv", "Add_1"]
    assert "reconstruct" in one[1]
    three = tail_nodes(fp16_graph, 3)
    assert sum("Conv" in n for n in three) == 3 and set(one) <= set(three)
    with pytest.raises(ValueError, match="cannot keep the last 99"):
        tail_nodes(fp16_graph, 99)


@pytest.mark.parametrize("convs", [1, 3])
def test_fp32_tail_graph_is_typed_and_computes_the_tail_in_float32(fp16_graph, convs):
    mixed = with_fp32_tail(fp16_graph, convs)
    inferred = onnx.shape_inference.infer_shapes(mixed, strict_mode=True, check_type=True)
    types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    types.update({i.name: i.data_type for i in mixed.graph.initializer})
    nodes = {n.name: n for n in mixed.graph.node}
    for name in tail_nodes(fp16_graph, convs):
        node = nodes[name]
        float_inputs = [i for i in node.input if types.get(i) in (FLOAT, FLOAT16)]
        assert all(types.get(i, FLOAT) == FLOAT for i in float_inputs), name
    # The skip takes the image from the float32 graph input, not its float16 copy.
    slice_node = next(n for n in mixed.graph.node if n.op_type == "Slice")
    assert slice_node.input[0] == "input"
    head_conv = next(n for n in mixed.graph.node if n.op_type == "Conv")
    assert types[head_conv.output[0]] == FLOAT16  # the rest stays FP16
    # No float16 copy of a weight that moved to float32 is left behind.
    used = {i for n in mixed.graph.node for i in n.input}
    assert all(init.name in used for init in mixed.graph.initializer)


def test_fp16_variants_through_onnx_runtime_match_pytorch(trained_like, fp16_graph):
    x = sample_frames(2, 1, 40, 52, count=2)
    reference = reference_output(trained_like, x)
    psnr = {k: output_psnr(reference, _run(with_fp32_tail(fp16_graph, k) if k else fp16_graph, x))
            for k in (0, 1, 3)}
    assert all(value > 45 for value in psnr.values()), psnr
    # FP32 at the end removes the FP16 rounding of the output and of the skip.
    assert psnr[1] > psnr[0] and psnr[3] > psnr[0]


def test_keep_fp32_refuses_unknown_nodes(fp16_graph):
    with pytest.raises(ValueError, match="no node named 'nope'"):
        keep_fp32(fp16_graph, ["nope"])
    assert keep_fp32(fp16_graph, []).SerializeToString() == fp16_graph.SerializeToString()


def test_reference_output_restores_tf32_flags(trained_like):
    before = torch.backends.cudnn.allow_tf32
    out = reference_output(trained_like, sample_frames(2, 1, 16, 16, count=1))
    assert out.shape == (1, 1, 16, 16) and torch.backends.cudnn.allow_tf32 == before
    assert fp16_gate.MIN_PSNR_DB == 45.0
