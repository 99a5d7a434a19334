#!/usr/bin/env bash
# One prepared device session (jaxstack issue 15): every GPU measurement, JSON under $OUT.
#   PYTHONPATH=. OUT=/tmp/out bash benchmarks/gpu/run_all.sh
# Each step has its own time limit so that a slow one still leaves the others' results.
set -u
OUT=${OUT:-/tmp/jaxstack-gpu}
mkdir -p "$OUT"
export PYTHONPATH=${PYTHONPATH:-.}
export JAXSTACK_CACHE_DIR=off
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
python -c "import jax; print(jax.__version__, jax.devices())" > "$OUT/jax.txt" 2>&1
# 1. sweep speed with the DEFAULT chunk at 1e8 and 1e9 points (deepstack-decode: 2.5e14 points)
timeout 150 python benchmarks/bench_sweep.py --space spaces/deepstack-decode.yaml --sizes 1e8,1e9 --repeat 1 \
  > "$OUT/sweep_default.json" 2> "$OUT/sweep_default.err"
# 2. chunk scan around the default (1e9 points each)
for c in 4194304 16777216; do
  timeout 60 python benchmarks/bench_sweep.py --space spaces/deepstack-decode.yaml --sizes 1e9 --repeat 1 \
    --chunk $c > "$OUT/sweep_chunk_$c.json" 2> "$OUT/sweep_chunk_$c.err"
done
# 3. paper-scale search (batch 1024, all 40 DRAM rows), no exhaustive check
timeout 150 python benchmarks/bench_search.py --check-points 0 --batches 1024 --zip-rows all \
  > "$OUT/search.json" 2> "$OUT/search.err"
# 4. compile cost on the GPU (in-process, no CLI, no legacy core)
timeout 90 python benchmarks/bench_compile.py --no-cli --no-legacy > "$OUT/compile.json" 2> "$OUT/compile.err"
# 5. hoisted vs flat whole-space sweep (hbm-whatif, 693,000 points; session 7's CPU gain was 1.64x)
timeout 90 python benchmarks/bench_sweep.py --sizes 693000 --repeat 2 > "$OUT/sweep_hoist.json" 2> "$OUT/sweep_hoist.err"
tail -n 3 "$OUT"/*.err
