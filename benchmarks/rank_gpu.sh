#!/usr/bin/env bash
# The rank game's accelerator benchmarks in one go, for a machine with a GPU (and JAX with CUDA):
# SmolLM2 fidelity of every solver at 50% / 30% with a larger calibration-loss text, then the
# attention latency of the chosen configs against full attention at L = 512 ... 8192.
#
#   bash benchmarks/rank_gpu.sh OUTDIR [CAL_LOSS] [MAX_EVALS]
#
# Writes OUTDIR/rank_fidelity.{json,md} (benchmarks/bench_rank_fidelity.py) and
# OUTDIR/rank_latency.json (benchmarks/bench_rank_latency.py); the rank tables land in
# $MALLOCGAME_CACHE/rank as usual. Each step has a wall-clock cap so that a slow step leaves the
# others their time; the fidelity bench writes its rows one by one, so a capped run keeps them.
# Fidelity runs with float32 matmuls at full precision (JAX_DEFAULT_MATMUL_PRECISION=highest,
# the CPU's arithmetic); the latency step runs at the backend's default precision.
set -u
out=${1:?usage: rank_gpu.sh OUTDIR [CAL_LOSS] [MAX_EVALS]}
cal_loss=${2:-4}
max_evals=${3:-300}
py=${PYTHON:-python3}
mkdir -p "$out"
"$py" -c 'import jax; print("jax", jax.__version__, jax.devices())'
JAX_DEFAULT_MATMUL_PRECISION=highest timeout "${FIDELITY_SECONDS:-330}" "$py" \
    benchmarks/bench_rank_fidelity.py --models smollm2 --budgets 0.5,0.3 \
    --solvers uniform,spectral,fisher,greedy --eval-windows 16 --cal-loss "$cal_loss" \
    --max-evals "$max_evals" --time-limit "${GREEDY_SECONDS:-100}" \
    --json-out "$out/rank_fidelity.json"
echo "fidelity exit $?"
fid=()
[ -f "$out/rank_fidelity.json" ] && fid=(--fidelity-json "$out/rank_fidelity.json")
# Longest sequences first; on an H200 each config's 30-layer attention compiles in ~15 s, so
# only the full model, the same rank 16 everywhere and greedy's configs are timed.
timeout "${LATENCY_SECONDS:-240}" "$py" benchmarks/bench_rank_latency.py --model smollm2 \
    --seq-lens "${SEQ_LENS:-8192,4096,2048,512}" --ranks 16 --repeats 5 "${fid[@]}" \
    --fidelity-solvers greedy --json-out "$out/rank_latency.json"
echo "latency exit $?"
