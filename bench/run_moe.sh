#!/usr/bin/env bash
# One lent single-GPU H200 call for issue #18 (2026-12-01): MoE rows in transformers' default
# experts implementation (grouped_mm) and in eager, forward and generate; the re-measured
# GPU-bound misses (Gemma 2 9B, float32, GPT-2 medium); a kernel table of a grouped_mm forward.
# Usage: bash bench/run_moe.sh OUTDIR   (results also tarred into $OUT/results.tgz after each stage)
source "$(dirname "$0")/run_common.sh"
moe=mistralai/Mixtral-8x7B-v0.1,Qwen/Qwen3-30B-A3B
for impl in grouped_mm eager; do
  timeout 170 python -m pytest bench/test_forward.py "${common[@]}" --bench-models $moe --bench-dtype bfloat16 \
    --bench-batch 1,8 --bench-seq 128,1024 -k "gpu and (1x128 or 8x1024)" --bench-experts-implementation $impl \
    --bench-report-name moe-forward-$impl > "$out/moe-forward-$impl.log" 2>&1; snap
done
timeout 200 python -m pytest bench/test_generate.py "${common[@]}" --bench-models $moe --bench-dtype bfloat16 \
  --bench-batch 1 --bench-seq 128 --bench-new-tokens 16 --bench-rounds 3 \
  --bench-report-name moe-generate-grouped_mm > "$out/moe-generate-grouped_mm.log" 2>&1; snap
timeout 120 python -m pytest bench/test_generate.py "${common[@]}" --bench-models mistralai/Mixtral-8x7B-v0.1 \
  --bench-dtype bfloat16 --bench-batch 1 --bench-seq 128 --bench-new-tokens 16 --bench-rounds 3 \
  --bench-experts-implementation eager --bench-report-name moe-generate-eager > "$out/moe-generate-eager.log" 2>&1; snap
timeout 90 python -m pytest bench/test_forward.py "${common[@]}" --bench-models google/gemma-2-9b --bench-dtype bfloat16 \
  --bench-batch 2 --bench-seq 1024 --bench-report-name misses-gemma2 > "$out/misses-gemma2.log" 2>&1; snap
timeout 90 python -m pytest bench/test_forward.py "${common[@]}" --bench-models AICrossSim/clm-200m,AICrossSim/clm-400m,facebook/opt-1.3b \
  --bench-dtype float32 --bench-batch 16 --bench-seq 1024 --bench-report-name misses-fp32 > "$out/misses-fp32.log" 2>&1; snap
timeout 60 python -m pytest bench/test_forward.py "${common[@]}" --bench-models openai-community/gpt2-medium \
  --bench-dtype float16 --bench-batch 32 --bench-seq 512 --bench-report-name misses-gpt2 > "$out/misses-gpt2.log" 2>&1; snap
ROWS=70 timeout 60 python -m bench.profile_ops Qwen/Qwen3-30B-A3B 8 1024 bfloat16 > "$out/kernels-qwen3moe-grouped.txt" 2>&1
ROWS=70 timeout 60 python -m bench.profile_ops mistralai/Mixtral-8x7B-v0.1 8 1024 bfloat16 > "$out/kernels-mixtral-grouped.txt" 2>&1; snap
grep -h -E "passed|failed|error" "$out"/*.log | tail -20
