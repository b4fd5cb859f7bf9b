#!/usr/bin/env bash
# Issue #17's GPU check (target 6) in one call of the device tool; bench/README.md, "On a GPU".
#
# Runs in the repository root; writes under $OUT (the device tool's folder that comes back),
# else ./gpu_out. Environment: PYTHON (default python3, the image's, with JAX for CUDA, Flax
# and Optax), PEERS_PYTHON (default $PYTHON), PEERS_DIR (default .gpu/peers, the copy of
# ../shared/bench/peers that bench/gpu_prepare.sh makes), GPU_CHECK_S (seconds for it all,
# default 390), QUICK=1 for short runs (a dry run on a CPU: PLATFORM=cpu QUICK=1).
set -u -o pipefail
out=${OUT:-gpu_out}
py=${PYTHON:-python3}
peers_py=${PEERS_PYTHON:-$py}
peers=${PEERS_DIR:-.gpu/peers}
budget=${GPU_CHECK_S:-390}
platform=${PLATFORM:-}
quick=${QUICK:+--quick}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 MINITRAX_CACHE_DIR=
export JAX_PLATFORMS=$platform
start=$(date +%s)
left() { echo $((budget - $(date +%s) + start)); }

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  $py -c 'import jax; print("jax", jax.__version__, jax.devices())'
  $peers_py -c 'import flax, optax; print("flax", flax.__version__, "optax", optax.__version__)'
} > "$out/device.txt" 2>&1
cat "$out/device.txt"

# 1. Matmul ceilings (float32 runs as TF32 on a GPU by JAX's default), for the share of peak.
n=8192
[ -n "$quick" ] && n=1024
for dtype in float32 bfloat16; do
  timeout 90 $py -m bench.common --n $n --steps 10 --dtype $dtype >> "$out/results.jsonl" \
    2>> "$out/log.txt" || echo "ceiling $dtype failed" | tee -a "$out/log.txt"
done

# 2. W1-W4, Flax+Optax and minitrax taking turns, one run each (cold compiles, no cache).
if [ "$(left)" -gt 30 ]; then
  timeout "$(left)" $py -m bench --platform "$platform" --peers --pairs 1 \
    --peers_python "$peers_py" --peers_dir "$peers" --only W1,W2,W3,W4 $quick \
    --out "$out/results.jsonl" --run_id GPU 2>&1 | tee "$out/bench.txt"
fi

# 3. ReformerLM: 64k tokens measured, up to 1M compiled (device memory: the compiled estimate).
if [ "$(left)" -gt 60 ]; then
  max=${QUICK:+8192}
  timeout "$(left)" $py bench/reformer_long.py --models reformer --start "${max:-65536}" \
    --max_len "${max:-1048576}" --run_max "${max:-262144}" --budget_gib 120 \
    --json "$out/reformer.jsonl" 2>&1 | tail -20 | tee -a "$out/bench.txt"
fi

# 4. Share of the ceilings: the training workloads' GFLOP/s against the matmul probes.
$py - "$out/results.jsonl" <<'PY' 2>&1 | tee -a "$out/bench.txt"
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
ceiling = {r['impl']: r['figures']['gflops_median'] for r in rows if r['workload'] == 'matmul_ceiling'}
print('ceilings GFLOP/s:', {k: round(v) for k, v in ceiling.items()})
for r in rows:
  gflops = r['figures'].get('gflops')
  if gflops:
    shares = ', '.join(f'{gflops / c:.1%} of {k}' for k, c in ceiling.items())
    print(f"{r['workload']:14s} {r['impl']:32s} {gflops:9.1f} GFLOP/s: {shares}")
PY
echo "gpu_check: $(($(date +%s) - start)) s" | tee -a "$out/bench.txt"
