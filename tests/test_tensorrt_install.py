"""Installing the TensorRT that fits the driver: the extras, the mismatch found from
package metadata (no import of tensorrt), and what `streamfix info` says."""

import sys
from pathlib import Path

import pytest

from streamfix.cli.main import main
from streamfix.engines import cuda_driver, trt_install
from streamfix.engines.base import EngineUnavailable
from streamfix.engines.tensorrt_engine import TensorRTConfig, check_available
from streamfix.engines.trt_install import TensorRTInstall, extra_for, install_problem, installed

ROOT = Path(__file__).resolve().parent.parent


def _extras() -> dict[str, list[str]]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def test_extras_name_the_cuda_major_and_pycuda_compiles_with_cuda_13():
    """Bug: the only extra, `tensorrt`, resolved NVIDIA's meta package, which from 11.x
    installs the CUDA 13 build whatever the driver; and `pycuda>=2024.1` admitted
    versions that do not compile against CUDA 13's cuda.h (fixed in 2025.1.2)."""
    extras = _extras()
    assert "tensorrt" not in extras
    assert extras["tensorrt-cu12"] == ["tensorrt-cu12>=10.0,<12", "pycuda>=2025.1.2"]
    assert extras["tensorrt-cu13"] == ["tensorrt-cu13>=10.13.2,<12", "pycuda>=2025.1.2"]


def _fake_distribution(site: Path, name: str, version: str) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A site-packages of our own, searched first."""
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_installed_builds_are_read_from_package_metadata(site):
    _fake_distribution(site, "tensorrt_cu13", "11.4.0.106")
    _fake_distribution(site, "tensorrt_cu13_libs", "11.4.0.106")
    _fake_distribution(site, "tensorrt_cu12_bindings", "10.13.3.9")
    assert installed() == [TensorRTInstall("tensorrt-cu12-bindings", "10.13.3.9", 12),
                           TensorRTInstall("tensorrt-cu13", "11.4.0.106", 13)]


CU12 = TensorRTInstall("tensorrt-cu12", "11.4.0.106", 12)
CU13 = TensorRTInstall("tensorrt-cu13", "11.4.0.106", 13)


def test_a_cuda_13_build_on_a_cuda_12_driver_says_what_to_run():
    problem = install_problem([CU13], (12, 8))
    assert problem == ("tensorrt-cu13 11.4.0.106 is built for CUDA 13 (driver 580 or newer), but this driver "
                       "supports CUDA 12.8: pip uninstall -y tensorrt tensorrt-cu13 tensorrt-cu13-bindings "
                       'tensorrt-cu13-libs && pip install "streamfix[tensorrt-cu12]"')


def test_both_builds_installed_overwrite_each_other():
    problem = install_problem([CU12, CU13], (13, 0))
    assert problem.startswith("tensorrt-cu12 11.4.0.106 and tensorrt-cu13 11.4.0.106 are both installed; they "
                              "overwrite each other's `tensorrt` package: pip uninstall -y tensorrt tensorrt-cu12 ")
    assert problem.endswith('then pip install "streamfix[tensorrt-cu13]"') and "\n" not in problem


@pytest.mark.parametrize("installs,driver", [([CU12], (13, 0)), ([CU13], (13, 1)), ([CU13], None), ([], (12, 2))])
def test_what_fits_or_cannot_be_known_is_no_problem(installs, driver):
    assert install_problem(installs, driver) is None


def test_a_driver_older_than_cuda_12_needs_an_update():
    assert "update the driver" in install_problem([CU12], (11, 8))


@pytest.mark.parametrize("driver,command", [
    ((12, 4), 'pip install "streamfix[tensorrt-cu12]"'), ((13, 0), 'pip install "streamfix[tensorrt-cu13]"'),
    ((14, 0), 'pip install "streamfix[tensorrt-cu13]"'),
])
def test_the_extra_follows_the_driver(driver, command):
    assert extra_for(driver) == command


def test_the_mismatch_is_the_reason_before_tensorrt_is_even_imported(site, monkeypatch):
    """A CUDA 13 build on a CUDA 12 driver may not even import; the reason given is
    the mismatch and its fix, not the import error."""
    _fake_distribution(site, "tensorrt_cu13", "11.4.0.106")
    monkeypatch.setattr(cuda_driver, "driver_cuda_version", lambda: (12, 8))
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(EngineUnavailable, match=r"built for CUDA 13 .* this driver supports CUDA 12\.8"):
        check_available(TensorRTConfig(device="cuda"))


def test_info_reports_the_driver_the_build_and_the_mismatch_in_one_line(site, monkeypatch, capsys):
    _fake_distribution(site, "tensorrt_cu13", "11.4.0.106")
    monkeypatch.setattr(cuda_driver, "driver_cuda_version", lambda: (12, 8))
    assert main(["info", "--device", "cuda"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "driver       NVIDIA, supports CUDA 12.8" in out
    assert "tensorrt     11.4.0.106 for CUDA 13 (tensorrt-cu13)" in out
    problems = [line for line in out if "does not fit this machine" in line]
    assert len(problems) == 1 and 'pip install "streamfix[tensorrt-cu12]"' in problems[0]
    (row,) = [line for line in out if line.strip().startswith("tensorrt ") and " no " in line]
    assert "built for CUDA 13" in row


def test_the_driver_version_reads_none_without_a_driver(monkeypatch):
    monkeypatch.setattr(cuda_driver, "_libcuda", lambda: None)
    assert cuda_driver.driver_cuda_version() is None
    with pytest.raises(cuda_driver.DriverError):
        cuda_driver.pop_current_context()
    assert trt_install.describe([]) == ""
