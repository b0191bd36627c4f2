"""Keep chosen layers of a float16 ONNX graph in float32 (for a strongly typed build).

A strongly typed TensorRT network computes each layer in the type its inputs have,
so the precision of a layer is set in the graph, not with builder flags. The
FP16 accuracy gate uses this to move the last layers of CAR-DRN back to FP32 when
the all-FP16 engine loses too much accuracy: restoration nets lose precision mostly
at the end, where the predicted residual (a few code values) is added to the image.

`keep_fp32(graph, names)` gives the named nodes float32 inputs (float32 copies of
their float16 weights; a Cast in front of float16 activations) and puts a Cast back
to float16 behind every float16 consumer of their outputs. `tail_nodes(graph, k)`
names the nodes from the k-th last convolution to the output, plus the data movers
(Slice) that feed them: for CAR-DRN with k = 1 that is the reconstruction conv, the
global skip's Slice and the final Add, so the residual is added to the image in
float32 taken straight from the float32 graph input.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import Iterable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FLOAT, FLOAT16 = TensorProto.FLOAT, TensorProto.FLOAT16
# Ops that only move or select data: they run in whatever type they are fed, so a
# float32 node may pull them into float32 with it.
_DATA_MOVERS = {"Slice", "Identity", "Reshape", "Transpose", "Squeeze", "Unsqueeze"}
_NOT_COMPUTE = {"Cast", "Constant"}


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor of the graph (inputs, weights, activations)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {init.name: init.data_type for init in model.graph.initializer}
    for info in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        types[info.name] = info.type.tensor_type.elem_type
    return types


def _cast_to(node: onnx.NodeProto) -> int | None:
    if node.op_type != "Cast":
        return None
    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == "to"), None)


def tail_nodes(model: onnx.ModelProto, convs: int) -> list[str]:
    """Names of the nodes from the `convs`-th last Conv to the end of the graph
    (Casts and Constants excepted), plus the data movers feeding them."""
    nodes = list(model.graph.node)
    conv_at = [i for i, n in enumerate(nodes) if n.op_type == "Conv"]
    if convs <= 0:
        return []
    if convs > len(conv_at):
        raise ValueError(f"the graph has {len(conv_at)} Conv nodes, cannot keep the last {convs} in float32")
    chosen = {n.name for n in nodes[conv_at[-convs]:] if n.op_type not in _NOT_COMPUTE}
    producer = {out: n for n in nodes for out in n.output}
    grew = True
    while grew:
        grew = False
        for n in nodes:
            if n.name not in chosen:
                continue
            for name in n.input:
                src = producer.get(name)
                if src is not None and src.op_type in _DATA_MOVERS and src.name not in chosen:
                    chosen.add(src.name)
                    grew = True
    return [n.name for n in nodes if n.name in chosen]


def keep_fp32(model: onnx.ModelProto, names: Iterable[str]) -> onnx.ModelProto:
    """A copy of float16 graph `model` in which the nodes `names` compute in float32."""
    keep = set(names)
    out = copy.deepcopy(model)
    graph = out.graph
    missing = keep - {n.name for n in graph.node}
    if missing:
        raise ValueError(f"no node named {sorted(missing)[0]!r} in the graph")
    if not keep:
        return out
    types = _elem_types(model)
    producer = {o: n for n in graph.node for o in n.output}
    inits = {i.name: i for i in graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for n in graph.node:
        for name in n.input:
            consumers[name].append(n)
    graph_outputs = {o.name for o in graph.output}

    new_nodes: list[onnx.NodeProto] = []
    fp32_of: dict[str, str] = {}  # float16 tensor -> its float32 stand-in

    def as_fp32(name: str) -> tuple[str, list[onnx.NodeProto]]:
        if name in fp32_of:
            return fp32_of[name], []
        src = producer.get(name)
        if src is not None and _cast_to(src) == FLOAT16 and types.get(src.input[0]) == FLOAT:
            fp32_of[name] = src.input[0]  # skip the round trip through float16
            return fp32_of[name], []
        if name in inits:
            copy32 = numpy_helper.from_array(numpy_helper.to_array(inits[name]).astype(np.float32), name + "_fp32")
            graph.initializer.append(copy32)
            fp32_of[name] = copy32.name
            return copy32.name, []
        fp32_of[name] = name + "_fp32"
        return fp32_of[name], [helper.make_node("Cast", [name], [fp32_of[name]], to=FLOAT, name=name + "_to_fp32")]

    for node in graph.node:
        if node.name not in keep:
            new_nodes.append(node)
            continue
        for k, name in enumerate(node.input):
            src = producer.get(name)
            if not name or types.get(name) != FLOAT16 or (src is not None and src.name in keep):
                continue
            node.input[k], casts = as_fp32(name)
            new_nodes.extend(casts)
        new_nodes.append(node)
        for k, name in enumerate(node.output):
            if types.get(name) != FLOAT16:
                continue
            outside = [c for c in consumers[name] if c.name not in keep and _cast_to(c) != FLOAT]
            if name in graph_outputs:  # keep the declared float16 output type
                node.output[k] = name + "_fp32"
                for c in consumers[name]:
                    if c.name in keep:
                        c.input[:] = [node.output[k] if used == name else used for used in c.input]
                new_nodes.append(helper.make_node("Cast", [node.output[k]], [name], to=FLOAT16,
                                                  name=name + "_to_fp16"))
                continue
            if outside:
                back = name + "_fp16"
                new_nodes.append(helper.make_node("Cast", [name], [back], to=FLOAT16, name=name + "_to_fp16"))
                for c in outside:
                    for j, used in enumerate(c.input):
                        if used == name:
                            c.input[j] = back
    del graph.node[:]
    graph.node.extend(new_nodes)
    used = {name for n in graph.node for name in n.input}
    unused = [init for init in graph.initializer if init.name not in used]
    for init in unused:  # float16 originals replaced by their float32 copies
        graph.initializer.remove(init)
    del graph.value_info[:]  # types changed; shape inference recomputes them
    onnx.checker.check_model(out)
    return out


def with_fp32_tail(model: onnx.ModelProto, convs: int) -> onnx.ModelProto:
    """`model` with its last `convs` convolutions (and what follows) in float32."""
    return keep_fp32(model, tail_nodes(model, convs))
