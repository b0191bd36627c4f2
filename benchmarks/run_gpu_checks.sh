#!/usr/bin/env bash
# The GPU checks in one command, for an offline GPU machine:
#
#     bash benchmarks/run_gpu_checks.sh OUTDIR [WHEELS_DIR]
#
# Needs no network and writes nothing outside OUTDIR (the checkout is copied to
# OUTDIR/src and installed from there). Finishes within BUDGET_S seconds (default
# 460, under 8 minutes), then OUTDIR/report.md says what was verified, what failed,
# and what cannot be verified here and why; the exit code is 0 unless a check failed.
#
# 1. PYTHON (default python3) is the interpreter that holds a CUDA build of PyTorch.
#    A virtual environment OUTDIR/venv is layered over it: it sees every package
#    PYTHON sees, also when PYTHON is itself a venv (whose packages a plain
#    --system-site-packages would not show), and its installs do not touch PYTHON's.
# 2. WHEELS_DIR, if given, holds wheels and sdists to install first, offline
#    (--no-index): PyAV's wheel, and pycuda's sdist with pytools, platformdirs, mako
#    and siphash24 (pycuda compiles here, with the machine's nvcc).
#    benchmarks/fetch_gpu_wheels.sh fills such a folder on a machine with network.
# 3. streamfix itself is installed with --no-deps --no-build-isolation.
# 4. benchmarks/gpu_checks.py runs the checks (GPU tests in groups, the benchmark).
#    TensorRT's libraries (over 1 GB) cannot be carried: without them the report
#    says TensorRT is not verifiable, and why, and verifies the rest.
set -uo pipefail

say() { printf 'run_gpu_checks: %s\n' "$*" >&2; }

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    say "usage: bash benchmarks/run_gpu_checks.sh OUTDIR [WHEELS_DIR]"
    exit 2
fi
START=$(date +%s)
DEADLINE=$((START + ${BUDGET_S:-460}))
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1" || { say "cannot create $1"; exit 2; }
OUT=$(cd "$1" && pwd)
WHEELS=${2:-}
if [ -n "$WHEELS" ] && [ ! -d "$WHEELS" ]; then
    say "the wheels folder $WHEELS does not exist"
    exit 2
fi
[ -z "$WHEELS" ] || WHEELS=$(cd "$WHEELS" && pwd)
PYTHON=${PYTHON:-python3}

if ! command -v nvidia-smi >/dev/null 2>&1 || ! GPUS=$(nvidia-smi --query-gpu=name,driver_version,memory.total \
        --format=csv,noheader 2>/dev/null) || [ -z "$GPUS" ]; then
    echo "no NVIDIA GPU here (nvidia-smi is missing or lists none): nothing to check" | tee "$OUT/report.md" >&2
    exit 1
fi
MACHINE="$(echo "$GPUS" | head -n 1), $(uname -m)"
say "$MACHINE"
# pycuda's build looks for nvcc on PATH.
for dir in /usr/local/cuda/bin /usr/local/cuda-*/bin; do
    [ -x "$dir/nvcc" ] && ! command -v nvcc >/dev/null 2>&1 && PATH="$PATH:$dir"
done
export PATH XDG_CACHE_HOME="$OUT/cache" PYTHONPYCACHEPREFIX="$OUT/pycache" PIP_NO_INPUT=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1

# 1. The environment.
VENV="$OUT/venv"
# Not --system-site-packages: from a venv, that shows the base interpreter's packages,
# not PYTHON's. The .pth below shows exactly the folders PYTHON sees, pip included.
"$PYTHON" -m venv --without-pip "$VENV" || { say "$PYTHON cannot make a venv"; exit 1; }
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"$PYTHON" - >"$SITE/_streamfix_base.pth" <<'EOF'
import os, site, sys
# Each folder of PYTHON's packages, after the venv's own, with the .pth files in it
# (editable installs, path hooks), except a streamfix install of PYTHON's own, which
# would shadow the copy installed here.
folders = [f for f in dict.fromkeys([*site.getsitepackages(), site.getusersitepackages(), *sys.path])
           if f.endswith(("site-packages", "dist-packages")) and os.path.isdir(f)]
for folder in folders:
    print(folder)
    for name in sorted(os.listdir(folder)):
        if name.endswith(".pth") and "streamfix" not in name.lower():
            print(f"import site; site.addpackage({folder!r}, {name!r}, None)")
EOF
PY="$VENV/bin/python"
"$PY" -c 'import torch, pip' 2>/dev/null || {
    say "$PYTHON has no torch or no pip; run with PYTHON=the interpreter that holds PyTorch"; exit 1; }

left() { echo $((DEADLINE - $(date +%s))); }
pip_offline() {
    [ "$(left)" -gt 0 ] || { echo "no time left in the budget"; return 1; }
    timeout "$(left)" "$PY" -m pip install --no-index --no-build-isolation "$@"
}

# 2. Carried packages, one at a time, so that one failing (pycuda without nvcc, say)
#    does not stop the others; the report then says what is missing.
if [ -n "$WHEELS" ]; then
    for file in "$WHEELS"/*.whl "$WHEELS"/*.tar.gz; do
        [ -e "$file" ] || continue
        say "installing $(basename "$file")"
        pip_offline --find-links "$WHEELS" "$file" >>"$OUT/install.log" 2>&1 \
            || say "could not install $(basename "$file") (see $OUT/install.log)"
    done
fi

# 3. streamfix, from a copy: building it writes build/ and *.egg-info next to the source.
#    Left out of the copy: git's and the venv's folders, and OUTDIR and WHEELS_DIR
#    when they lie inside the checkout.
inside() { case "$1" in "$ROOT"/*) echo "--exclude=./${1#"$ROOT"/}" ;; *) echo "--exclude=./.git" ;; esac; }
rm -rf "$OUT/src" && mkdir -p "$OUT/src"
tar -C "$ROOT" --exclude=./.git --exclude=./.venv --exclude=__pycache__ "$(inside "$OUT")" \
    "$(inside "${WHEELS:-$ROOT/.git}")" -cf - . | tar -C "$OUT/src" -xf - || { say "cannot copy $ROOT"; exit 1; }
pip_offline --no-deps "$OUT/src" >>"$OUT/install.log" 2>&1 || {
    say "could not install streamfix (see $OUT/install.log)"; exit 1; }

# 4. The checks.
cd "$OUT" || exit 1
"$PY" -m streamfix.benchmarks.gpu_checks "$OUT" --source "$OUT/src" --deadline "$DEADLINE" --machine "$MACHINE"
STATUS=$?
say "report: $OUT/report.md ($(( $(date +%s) - START )) s)"
exit "$STATUS"
