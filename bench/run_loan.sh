#!/usr/bin/env bash
# The lent single-GPU H200 calls of the 2026-12-03 afternoon session (issues 25 and 24), each
# stage's results tarred into $OUT/results.tgz as it ends. Usage: bash bench/run_loan.sh OUTDIR STAGE
#   cal:  a full calibration timing every model type's host and generate() overhead (the shipped
#         profile's host sections), the README main job with --bench-calibrate always (calibration
#         <= 60 s, the six GPU-bound rows within 5 %), the host-bound matrix (batch 1/64 x seq 128/2048);
#   fam:  the new families' forward passes at GPU-bound shapes (bench/slices: configs cut to one GPU)
#         and the KV cache of sliding-window models in generate at 8k context;
#   gen1 / gen16: bench/test_generate.py, 64 new tokens, seq 128/512, batch 1 or 16, the six models.
# Stages of the 2026-12-03 evening session (issues 25 and 24):
#   prof:   kernel profiles (bench/profile_ops.py) of the forward passes the estimate misses most:
#           gpt-oss-20b and the DeepSeek-V3 slice at 8 x 2048, Gemma 3 4B at 1 x 16384, OPT at 16 x 1024;
#   main:   the README main job with --bench-calibrate always; matrix: the host-bound matrix (24 rows);
#   v2lite: DeepSeek-V2-Lite's forward at 8 x 2048 and the sliding-window generate cases at 8k context.
# Stages of the 2026-12-03 night session (issue 25):
#   hostcal: the CPU the process gets (cgroup quota and throttling, load) around a full calibration
#            with every type's generate() timed, forward and generate round-robin (calibrate/host.py).
source "$(dirname "$0")/run_common.sh"
stage=${2:?cal, hostcal, fam, prof, main, matrix, v2lite, gen1 or gen16}
cpuinfo() {   # what may slow the host: the cgroup's CPU quota and its throttling, load, the CPUs we may use
  { date -u +%FT%TZ; nproc; cat /proc/loadavg; cat /sys/fs/cgroup/cpu.max /sys/fs/cgroup/cpu.stat 2>/dev/null
    python -c "import os; print('affinity', sorted(os.sched_getaffinity(0)))"
    lscpu 2>/dev/null | grep -E "^(Model name|CPU\(s\)|Thread|Core|Socket|CPU max MHz)"; } >> "$out/cpuinfo.txt" 2>&1; }
case "$stage" in
cal)
  /usr/bin/time -f "calibrate wall %e s" timeout 200 python -m estimator calibrate --generate-types all \
    --out "$out/h200-calibration-all-types.json" > "$out/cal-all.log" 2>&1; snap
  timeout 170 python -m pytest bench/ -q -p no:cacheprovider --bench-report-dir "$out" --bench-calibrate always \
    --bench-report-name main-calibrate-always > "$out/main.log" 2>&1
  cp -r "${XDG_CACHE_HOME:-$HOME/.cache}/llm-perf-estimator" "$out/cache" 2>/dev/null; snap
  timeout 200 python -m pytest bench/test_forward.py "${common[@]}" --bench-batch 1,64 --bench-seq 128,2048 \
    -k gpu --bench-report-name host-matrix > "$out/matrix.log" 2>&1; snap ;;
hostcal)
  cpuinfo
  /usr/bin/time -f "calibrate wall %e s" timeout 240 python -m estimator calibrate --generate-types all \
    --out "$out/h200-calibration-all-types.json" > "$out/cal-all.log" 2>&1
  cpuinfo; snap ;;
fam)
  timeout 150 python -m pytest bench/test_forward.py "${common[@]}" -k gpu --bench-batch 8 --bench-seq 2048 \
    --bench-models openai/gpt-oss-20b,bench/slices/DeepSeek-V3-5-layers,bench/slices/Llama-4-Scout-8-layers \
    --bench-report-name new-families > "$out/families.log" 2>&1; snap
  timeout 80 python -m pytest bench/test_forward.py "${common[@]}" -k gpu --bench-batch 1 --bench-seq 16384 \
    --bench-models bench/slices/gemma-3-4b-text --bench-report-name gemma3-16k > "$out/gemma.log" 2>&1; snap
  timeout 120 python -m pytest bench/test_generate.py "${common[@]}" --bench-batch 1 --bench-seq 8192 \
    --bench-new-tokens 8 --bench-models google/gemma-3-1b-pt,mistralai/Mistral-7B-v0.1,openai/gpt-oss-20b \
    --bench-report-name sliding-8k > "$out/sliding.log" 2>&1; snap ;;
prof)
  for m in "openai/gpt-oss-20b 8 2048" "bench/slices/gemma-3-4b-text 1 16384" "facebook/opt-1.3b 16 1024 float16" \
           "bench/slices/DeepSeek-V3-5-layers 8 2048" "AICrossSim/clm-200m 64 2048"; do
    set -- $m; f="$out/prof-$(basename "$1")-$2x$3.txt"
    ROWS=45 timeout 100 python -m bench.profile_ops $m > "$f" 2>&1; snap
  done ;;
main)
  timeout 170 python -m pytest bench/ -q -p no:cacheprovider --bench-report-dir "$out" --bench-calibrate always \
    --bench-report-name main-calibrate-always > "$out/main.log" 2>&1
  cp -r "${XDG_CACHE_HOME:-$HOME/.cache}/llm-perf-estimator" "$out/cache" 2>/dev/null; snap ;;
matrix)
  timeout "${MATRIX_TIMEOUT:-280}" python -m pytest bench/test_forward.py "${common[@]}" --bench-batch 1,64 \
    --bench-seq 128,2048 -k gpu --bench-report-name host-matrix > "$out/matrix.log" 2>&1; snap ;;
v2lite)
  timeout 150 python -m pytest bench/test_forward.py "${common[@]}" -k gpu --bench-batch 8 --bench-seq 2048 \
    --bench-models deepseek-ai/DeepSeek-V2-Lite --bench-report-name deepseek-v2-lite > "$out/v2lite.log" 2>&1; snap
  timeout 120 python -m pytest bench/test_generate.py "${common[@]}" --bench-batch 1 --bench-seq 8192 \
    --bench-new-tokens 8 --bench-models google/gemma-3-1b-pt,mistralai/Mistral-7B-v0.1,openai/gpt-oss-20b \
    --bench-report-name sliding-8k > "$out/sliding.log" 2>&1; snap ;;
gen1|gen16)
  b=${stage#gen}; cpuinfo
  timeout "${GEN_TIMEOUT:-560}" python -m pytest bench/test_generate.py "${common[@]}" --bench-new-tokens 64 \
    --bench-batch "$b" --bench-seq 128,512 --bench-report-name "gen-64-b$b" > "$out/gen$b.log" 2>&1; cpuinfo; snap ;;
esac
grep -h -E "passed|failed|error|calibrate wall|calibration done|expected" "$out"/*.log | tail -12
