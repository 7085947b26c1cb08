#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU: make CuPy available, run the GPU tests (-m gpu)
# and the benchmarks on the CuPy backend, and write a results table. Bounded to ~8 minutes.
#
#   benchmarks/gpu_check.sh [OUT_DIR]     (default: $OUT, else test-artifacts/gpu)
#
# Writes OUT_DIR/summary.md (one table: step, status, seconds, detail), pytest-gpu.txt and
# pytest-gpu.xml, benchmarks.txt and benchmarks.json, nvidia-smi.txt, environment.txt.
# Exit status: 0 when every step passed, 1 otherwise.
set -uo pipefail

cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-test-artifacts/gpu}}"
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
START=$(date +%s)
ROWS=()
FAILED=0

step() {  # step NAME TIMEOUT_S LOGFILE CMD...: run a bounded step, record its row
  local name=$1 limit=$2 log=$3; shift 3
  local t0=$(date +%s) rc
  echo "== $name (at most ${limit}s)" >&2
  timeout --kill-after=10 "$limit" "$@" >"$log" 2>&1
  rc=$?
  local dt=$(( $(date +%s) - t0 ))
  local status=passed detail
  detail=$(grep -E "passed|failed|skipped|error" "$log" | tail -1 | tr '|' '/' | cut -c1-120)
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then status="timed out"; FAILED=1
  elif [ $rc -ne 0 ]; then status="failed ($rc)"; FAILED=1; fi
  ROWS+=("| $name | $status | $dt | ${detail:-see $(basename "$log")} |")
  tail -5 "$log" >&2
  return $rc
}

# 1. The device.
if ! nvidia-smi >"$OUT_DIR/nvidia-smi.txt" 2>&1; then
  echo "nvidia-smi failed: no NVIDIA GPU or driver here" >&2
  ROWS+=("| nvidia-smi | failed | 0 | no NVIDIA GPU or driver |")
  FAILED=1
fi

# 2. CuPy in the environment (installed when missing).
if ! "$PY" -c "import cupy" >/dev/null 2>&1; then
  step "pip install cupy-cuda12x" 240 "$OUT_DIR/pip-cupy.txt" "$PY" -m pip install "cupy-cuda12x>=13"
fi
step "cupy sees the device" 60 "$OUT_DIR/cupy-device.txt" "$PY" -c "
import cupy
n = cupy.cuda.runtime.getDeviceCount()
p = cupy.cuda.runtime.getDeviceProperties(0)
x = cupy.arange(10, dtype=cupy.float64)
assert float((x * 2).sum()) == 90.0
print(f'cupy {cupy.__version__}: {n} device(s), {p[\"name\"].decode()}, passed')
"

export PRISM_BACKEND=cupy
"$PY" -c "from prism_kernels import backend as B; import json; print(json.dumps(B.describe(), indent=1))" \
  >"$OUT_DIR/environment.txt" 2>&1

# 3. The GPU tests (they skip cleanly without a device; here they must pass).
# tests/gpu holds every gpu-marked test and needs only the kernels' own dependencies, so it
# also runs on a bare GPU image without the web stack.
step "pytest -m gpu" 200 "$OUT_DIR/pytest-gpu.txt" \
  "$PY" -m pytest -m gpu -q -rs -p no:cacheprovider --junitxml="$OUT_DIR/pytest-gpu.xml" tests/gpu
if grep -qE "[0-9]+ skipped" "$OUT_DIR/pytest-gpu.txt" && ! grep -qE "[0-9]+ passed" "$OUT_DIR/pytest-gpu.txt"; then
  ROWS+=("| gpu tests ran | failed | 0 | every gpu test skipped: CuPy or the device is not usable |")
  FAILED=1
fi

# 4. The GPU benchmark (ours on CuPy and on PyTorch, side by side, against ours on NumPy, full
# sizes; needs no peer library). PRISM_BACKEND is unset for it: set, it restricts the run to
# that one library (benchmarks/gpu.py), and the CuPy/PyTorch comparison is the point.
LEFT=$(( 460 - ($(date +%s) - START) ))
if [ $LEFT -gt 30 ]; then
  step "python -m benchmarks gpu (CuPy and PyTorch)" "$LEFT" "$OUT_DIR/benchmarks.txt" \
    env -u PRISM_BACKEND "$PY" -m benchmarks gpu --json "$OUT_DIR/benchmarks.json"
else
  ROWS+=("| python -m benchmarks | skipped | 0 | no time left in the 8-minute budget |")
  FAILED=1
fi

{
  echo "# PRISM GPU check ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
  echo
  echo "Device: $(head -20 "$OUT_DIR/nvidia-smi.txt" 2>/dev/null | grep -oE 'NVIDIA [A-Za-z0-9 -]+' | head -1)"
  echo
  echo "| step | status | seconds | detail |"
  echo "|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "## Benchmarks (CuPy and PyTorch side by side; cupy_over_torch on the PyTorch rows)"
  echo
  echo '```'
  grep -vE "^running " "$OUT_DIR/benchmarks.txt" 2>/dev/null | tail -60
  echo '```'
} >"$OUT_DIR/summary.md"
cat "$OUT_DIR/summary.md"
echo "total $(( $(date +%s) - START )) s; results in $OUT_DIR" >&2
exit $FAILED
