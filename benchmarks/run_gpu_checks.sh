#!/usr/bin/env bash
# The GPU checks in one command, on a machine with an NVIDIA GPU and a fresh checkout:
#
#     bash benchmarks/run_gpu_checks.sh            # full benchmark (several TensorRT builds)
#     QUICK=1 bash benchmarks/run_gpu_checks.sh    # batches 1 and 8, short clips
#
# 1. makes a virtual environment (VENV, default ~/.cache/streamfix/venv-gpu) that can
#    see the system's packages, so a CUDA build of torch installed there is used as is;
# 2. installs streamfix with the `tensorrt` and `dev` extras (pycuda compiles against
#    the CUDA toolkit: nvcc must be on PATH). TENSORRT_PACKAGE replaces the tensorrt
#    requirement (e.g. TENSORRT_PACKAGE="tensorrt-cu12==10.13.*" for a CUDA 12
#    driver); WHEELS=DIR installs from a folder of wheels, for machines offline;
# 3. runs the GPU tests (tests marked gpu), failing rather than skipping when
#    TensorRT cannot be used;
# 4. runs benchmarks/gpu_bench.py, which writes benchmarks/gpu-<gpu name>.md with the
#    test summary at the top. Commit that file.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/streamfix/venv-gpu}
say() { printf 'run_gpu_checks: %s\n' "$*" >&2; }

command -v nvidia-smi >/dev/null || { say "nvidia-smi not found: this needs an NVIDIA GPU and driver"; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
command -v nvcc >/dev/null || say "warning: nvcc not on PATH; building pycuda will fail unless a wheel is available"

mkdir -p "$(dirname "$VENV")"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv --system-site-packages "$VENV"
# shellcheck disable=SC1091
. "$VENV/bin/activate"
python -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' || {
    say "PyTorch in $VENV sees no CUDA GPU: install a CUDA build of torch first (pip install torch)"; exit 1; }

pip_install() {
    if [ -n "${WHEELS:-}" ]; then pip install -q --no-index --find-links "$WHEELS" "$@"; else pip install -q "$@"; fi
}
if [ -n "${TENSORRT_PACKAGE:-}" ]; then
    pip_install -e ".[dev]" "$TENSORRT_PACKAGE" "pycuda>=2024.1"
else
    pip_install -e ".[tensorrt,dev]"
fi
python - <<'EOF'
from streamfix.engines.tensorrt_engine import TensorRTConfig, check_available, import_tensorrt
check_available(TensorRTConfig(device="cuda"))
print("TensorRT", import_tensorrt().__version__, "is usable")
EOF

LOG=$(mktemp)
set +e
STREAMFIX_REQUIRE_TENSORRT=1 python -m pytest -q -m gpu -rs tests 2>&1 | tee "$LOG"
TESTS=${PIPESTATUS[0]}
set -e
SUMMARY=$(grep -E '(passed|failed|error)' "$LOG" | tail -n 1 | sed 's/=//g; s/^ *//; s/ *$//')
[ "$TESTS" -eq 0 ] || say "GPU tests failed (exit $TESTS); the benchmark still runs so the numbers are recorded"

python benchmarks/gpu_bench.py ${QUICK:+--quick} --tests-summary "${SUMMARY:-no summary} (pytest -m gpu, exit $TESTS)"
exit "$TESTS"
