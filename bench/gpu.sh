#!/usr/bin/env bash
# All three GPU benchmarks in one go, CycleGAN first, each under its own time limit; logs in $OUT
# (or bench-results/), at most 11 minutes in all (not yet timed on a GPU). `bash bench/gpu.sh --smoke` checks the
# scripts on the CPU in a minute (their numbers then mean nothing). GPU_SH_LIMIT_CYCLEGAN / _BEGAN / _STACKGAN
# override the time limits and CYCLEGAN_ARGS / BEGAN_ARGS / STACKGAN_ARGS add arguments (bench/report.py uses
# them to fit everything into one 10-minute command).
set -u
cd "$(dirname "$0")/.."
out="${OUT:-bench-results}"
mkdir -p "$out"
py="${PYTHON:-python}"
smoke=""
[ "${1:-}" = "--smoke" ] && smoke="--smoke"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt" 2>&1 || true
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" >> "$out/gpu.txt" 2>&1
status=0
run() {   # name, time limit in seconds, command...
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s)"
    timeout "$limit" "$@" $smoke > "$out/$name.txt" 2>&1
    local rc=$?
    tail -n 25 "$out/$name.txt"
    [ $rc -eq 0 ] || { echo "!! $name exited with $rc (log: $out/$name.txt)"; status=1; }
}
# shellcheck disable=SC2086  (the *_ARGS are meant to split into words)
run cyclegan "${GPU_SH_LIMIT_CYCLEGAN:-240}" "$py" bench/bench_cyclegan.py --ablate ${CYCLEGAN_ARGS:-}
run began "${GPU_SH_LIMIT_BEGAN:-200}" "$py" bench/bench_began.py ${BEGAN_ARGS:-}
run stackgan "${GPU_SH_LIMIT_STACKGAN:-240}" "$py" bench/bench_stackgan.py ${STACKGAN_ARGS:-}
exit $status
