"""Which TensorRT is installed, for which CUDA, and whether this driver can run it.

NVIDIA publishes TensorRT on PyPI once per CUDA major: `tensorrt-cu12` and
`tensorrt-cu13` (the plain `tensorrt` is a meta package that, from 11.x, pulls
`tensorrt-cu13`). Each pulls `-bindings` and `-libs` packages that download the
real libraries from NVIDIA's own index at install time. A build for CUDA 13 needs a
driver for CUDA 13 (580 or newer); on an older driver its libraries do not load, or
load and then fail to create anything ("pybind11::init(): factory function returned
nullptr"). The two builds install the same `tensorrt` package, so installing one
beside the other overwrites it rather than adding to it.

This module reads the installed distributions (no import of tensorrt, which may
crash or hang on a broken install) and the driver's CUDA version (cuda_driver.py),
and says in one line what is wrong and what to run. It never guesses: when either
side is unknown, it reports nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

CUDA_MAJORS = (12, 13)  # the CUDA builds of TensorRT 10.x/11.x on PyPI
# The first Linux driver of each CUDA major (NVIDIA's CUDA toolkit release notes).
FIRST_DRIVER = {12: "525", 13: "580"}


@dataclass(frozen=True, slots=True)
class TensorRTInstall:
    distribution: str  # "tensorrt-cu13" (or its -bindings/-libs part when only that is there)
    version: str
    cuda_major: int

    def uninstall(self) -> str:
        m = self.cuda_major
        return f"pip uninstall -y tensorrt tensorrt-cu{m} tensorrt-cu{m}-bindings tensorrt-cu{m}-libs"


def installed() -> list[TensorRTInstall]:
    """The TensorRT builds installed, one per CUDA major."""
    found = []
    for major in CUDA_MAJORS:
        for name in (f"tensorrt-cu{major}", f"tensorrt-cu{major}-bindings", f"tensorrt-cu{major}-libs"):
            try:
                found.append(TensorRTInstall(name, version(name), major))
                break
            except PackageNotFoundError:
                continue
    return found


def extra_for(driver: tuple[int, int] | None) -> str:
    """The pip command that installs the TensorRT matching `driver` (major, minor)."""
    if driver is None or driver[0] not in CUDA_MAJORS:
        newest = CUDA_MAJORS[-1] if driver is not None and driver[0] > CUDA_MAJORS[-1] else None
        if newest is not None:
            return f'pip install "streamfix[tensorrt-cu{newest}]"'
        return 'pip install "streamfix[tensorrt-cu12]" or "streamfix[tensorrt-cu13]", as nvidia-smi\'s "CUDA Version" says'
    return f'pip install "streamfix[tensorrt-cu{driver[0]}]"'


def _cuda(driver: tuple[int, int]) -> str:
    return f"CUDA {driver[0]}.{driver[1]}"


def install_problem(installs: list[TensorRTInstall], driver: tuple[int, int] | None) -> str | None:
    """One line saying why the installed TensorRT cannot work with this driver, and
    what to run; None when nothing is known to be wrong."""
    if len(installs) > 1:
        names = " and ".join(f"{i.distribution} {i.version}" for i in installs)
        return (f"{names} are both installed; they overwrite each other's `tensorrt` package: "
                f"{'; '.join(i.uninstall() for i in installs)}; then {extra_for(driver)}")
    if not installs or driver is None:
        return None
    install = installs[0]
    if driver[0] < CUDA_MAJORS[0]:
        return (f"the NVIDIA driver supports only {_cuda(driver)}; TensorRT 10 and 11 need CUDA "
                f"{CUDA_MAJORS[0]} (driver {FIRST_DRIVER[CUDA_MAJORS[0]]} or newer): update the driver")
    if install.cuda_major > driver[0]:
        return (f"{install.distribution} {install.version} is built for CUDA {install.cuda_major} (driver "
                f"{FIRST_DRIVER[install.cuda_major]} or newer), but this driver supports {_cuda(driver)}: "
                f"{install.uninstall()} && {extra_for(driver)}")
    return None


def describe(installs: list[TensorRTInstall]) -> str:
    """'11.4.0.106 for CUDA 13 (tensorrt-cu13)' for `streamfix info`."""
    return ", ".join(f"{i.version} for CUDA {i.cuda_major} ({i.distribution})" for i in installs)
