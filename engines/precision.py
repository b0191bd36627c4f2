"""Precision as a choice: which CPU engine offers fp32, bf16 and int8, and what each needs.

`--precision` (core/options.py) is one name for every engine; this table says what
it sets in each backend's config. On a GPU, "auto" keeps each engine's own default
(FP16 with an accuracy gate) and "fp32" turns FP16 off; bf16 and int8 are CPU
precisions here.

    engine        fp32   bf16                         int8
    onnxruntime   yes    no (no bf16 CPU kernels)     QDQ graph (engines/int8_quantize.py)
    openvino      yes    inference-precision hint     the same QDQ graph
    torch         yes    autocast (oneDNN)            no

bf16 is only offered on CPUs with bf16 units (AVX-512 BF16, AMX, or Arm's BF16):
elsewhere the libraries emulate it, slower than fp32, so a request for it is an error
and `auto` does not time it.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from streamfix.core.errors import OptionError

CPU_PRECISIONS: dict[str, dict[str, dict[str, Any]]] = {
    "onnxruntime": {"fp32": {"int8": False, "fp16": False}, "int8": {"int8": True, "fp16": False}},
    "openvino": {"fp32": {"precision": "fp32"}, "bf16": {"precision": "bf16"}, "int8": {"precision": "int8"}},
    "torch": {"fp32": {"cpu_bf16": False}, "bf16": {"cpu_bf16": True}},
}
# /proc/cpuinfo flags (x86) or features (Arm) of units that compute bf16 natively.
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


@functools.lru_cache(maxsize=1)
def cpu_description() -> tuple[str, frozenset[str]]:
    """(model name, flags) of this machine's CPU from /proc/cpuinfo; ("unknown", {})
    where there is none (macOS, Windows)."""
    name, flags = "unknown", frozenset()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key in ("model name", "hardware", "cpu model") and name == "unknown":
                    name = value.strip()
                elif key in ("flags", "features") and not flags:
                    flags = frozenset(value.split())
    except OSError:
        pass
    return name, flags


def has_bf16_units() -> bool:
    return bool(BF16_FLAGS & cpu_description()[1])


def offered(engine: str) -> tuple[str, ...]:
    """The precisions `engine` offers on this CPU (bf16 only with bf16 units)."""
    names = tuple(CPU_PRECISIONS.get(engine, {}))
    return names if has_bf16_units() else tuple(p for p in names if p != "bf16")


def _engines_with(precision: str) -> str:
    return ", ".join(name for name, table in CPU_PRECISIONS.items() if precision in table)


def with_precision(engine: str, config: Any, precision: str, device: str) -> Any:
    """`config` of backend `engine` set to compute in `precision` on `device`;
    an OptionError that says what to use instead when it cannot."""
    if precision == "auto":
        return config
    fields = {f.name for f in dataclasses.fields(config)}
    if device != "cpu":
        if precision == "fp32":
            return dataclasses.replace(config, fp16=False) if "fp16" in fields else config
        raise OptionError(f"precision {precision} is for the CPU engines; on {device} use --precision auto "
                          "(FP16 where it is accurate enough) or fp32")
    table = CPU_PRECISIONS.get(engine, {})
    if precision not in table:
        has = ", ".join(table) or "nothing"
        raise OptionError(f"engine {engine} has no {precision} on the CPU (it offers {has}); "
                          f"{precision} runs on: {_engines_with(precision)}")
    check_cpu_precision(precision)
    return dataclasses.replace(config, **{k: v for k, v in table[precision].items() if k in fields})


def check_cpu_precision(precision: str) -> None:
    """An OptionError when this CPU cannot compute in `precision` natively."""
    if precision == "bf16" and not has_bf16_units():
        raise OptionError(f"precision bf16 needs a CPU with bf16 units (AVX-512 BF16 or AMX); this one "
                          f"({cpu_description()[0]}) has none, so bf16 would be emulated and slower than fp32; "
                          "use --precision fp32 or int8")


def precision_of(engine: Any) -> str:
    """What an engine (or the wrapper `choose()` puts around it) computes in."""
    inner = getattr(engine, "inner", engine)
    return str(getattr(inner, "precision", "fp32"))
