#!/usr/bin/env bash
# What one lent multi-GPU machine runs, in one go, from the repository root. Results go to $1 (and,
# when $OUT is set, are snapshotted into $OUT/results.tgz after every stage).
#   1. the README's main job, exactly as written: `python -m pytest bench/` (self-calibrating:
#      host overhead measured here over a shipped profile, or a full calibration of an unknown GPU;
#      single GPU, pipeline, data and tensor parallel at every GPU count the machine has);
#   2. generation cases (--bench-new-tokens) on one GPU;
#   3. the other architectures of the zoo on one GPU and a 2-GPU pipeline;
#   4. a kernel profile of a float32 forward pass (float32 rows are underestimated).
# Usage: bash bench/run_matrix.sh OUTDIR [STAGES, default 1234] [seconds for stage 1, default 450]
set -u
out=${1:?output folder}; stages=${2:-1234}; limit1=${3:-450}
mkdir -p "$out"
snap() { [ -n "${OUT:-}" ] && tar czf "$OUT/results.tgz" -C "$(dirname "$out")" "$(basename "$out")"; true; }
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm --format=csv > "$out/nvidia-smi.csv" 2>&1
common=(-q -p no:cacheprovider --bench-report-dir "$out")
if [[ $stages == *1* ]]; then
  timeout "$limit1" python -m pytest bench/ > "$out/main-job.log" 2>&1
  cp reports/bench-*.json reports/bench-*.rst "$out/" 2>/dev/null; cp -r reports/runs "$out/runs" 2>/dev/null; snap
fi
if [[ $stages == *2* ]]; then
  timeout 150 python -m pytest bench/test_generate.py "${common[@]}" --bench-gpus 1 --bench-batch 1 --bench-seq 512 \
    --bench-new-tokens 128 --bench-report-name generate-1x512 \
    --bench-models AICrossSim/clm-60m,AICrossSim/clm-1.1b,facebook/opt-1.3b,facebook/opt-6.7b > "$out/generate.log" 2>&1; snap
fi
if [[ $stages == *3* ]]; then
  timeout 120 python -m pytest bench/test_forward.py "${common[@]}" --bench-gpus 1,2 --bench-parallel pipeline \
    --bench-models facebook/opt-350m,EleutherAI/pythia-160m,EleutherAI/pythia-1b,Qwen/Qwen3-0.6B,microsoft/Phi-3-mini-4k-instruct,google/gemma-2-2b,google/gemma-3-1b-pt \
    --bench-report-name families > "$out/families.log" 2>&1; snap
fi
if [[ $stages == *4* ]]; then
  timeout 60 python -m bench.profile_ops AICrossSim/clm-60m 16 1024 float32 > "$out/prof-clm-60m-float32.txt" 2>&1; snap
fi
