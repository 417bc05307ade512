#!/usr/bin/env bash
# The rank game's agent solver with its surrogate games on 2 Ray workers vs in one process, at
# the same time limit, seeds 0-2, MiniLM at 50% of the attention FLOPs. Prints one line per run:
# mode, seed, calibration loss, configs measured, solve seconds. Usage (from the repo root):
#   bash benchmarks/rank_agent_workers.sh [TIME_LIMIT_S] [OUT_DIR]
set -euo pipefail
limit="${1:-40}"
out="${2:-out/rank_agent_workers}"
mkdir -p "$out"
for seed in 0 1 2; do
  for mode in ray local; do
    extra=()
    if [ "$mode" = ray ]; then extra=(--ray auto --workers 2); fi
    .venv/bin/mallocgame rank --model minilm --budget 0.5 --solver agent --time-limit "$limit" \
      --seed "$seed" "${extra[@]}" --out "$out/$mode-$seed.json" --json 2>/dev/null |
      .venv/bin/python -c "import json, sys; d = json.load(sys.stdin); print('$mode', $seed, \
round(d['calibration_loss'], 4), d['evaluations'], round(d['solve_seconds'], 1))"
  done
done
