#!/usr/bin/env bash
# On a machine with network, fill a folder with what benchmarks/run_gpu_checks.sh
# installs offline on a GPU machine that lacks it:
#
#     bash benchmarks/fetch_gpu_wheels.sh DIR [PYTHON_VERSION]    # default 3.12
#
# PyAV's wheel (about 35 MB; the end-to-end checks need it) and pycuda's sdist with
# the pure-Python packages it needs (pycuda compiles there, with that machine's
# nvcc; 2025.1.2 is the first release that compiles against CUDA 13). Wheels are for
# CPython PYTHON_VERSION on x86-64 Linux, whatever this machine is. TensorRT is not
# fetched: its libraries come from NVIDIA's index at install time and exceed 1 GB.
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: bash benchmarks/fetch_gpu_wheels.sh DIR [PYTHON_VERSION]" >&2
    exit 2
fi
DIR=$1
PYTHON_VERSION=${2:-3.12}
mkdir -p "$DIR"
python3 -m pip download --no-deps --only-binary=:all: --python-version "$PYTHON_VERSION" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$DIR" "av>=18.1,<19" pytools platformdirs mako markupsafe siphash24 typing-extensions
python3 -m pip download --no-deps --no-binary=:all: -d "$DIR" "pycuda==2025.1.2"
ls -l "$DIR"
