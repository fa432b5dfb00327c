#!/usr/bin/env bash
# Everything one lent GPU machine runs, in one go: calibrate twice (repeatability), then the suite
# over the user's table, two more workloads and four more architectures. Results go to $1.
# Usage: bash bench/run_matrix.sh OUTDIR [GPU counts, default 1,2,4]
set -u
out=${1:?output folder}; gpus=${2:-1,2,4}
mkdir -p "$out"
snap() { [ -n "${OUT:-}" ] && tar czf "$OUT/results.tgz" -C "$(dirname "$out")" "$(basename "$out")"; true; }
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm --format=csv > "$out/nvidia-smi.csv" 2>&1
key=$(python -c "import torch; from estimator.device import get_device; print(get_device(torch.cuda.get_device_name(0)).key)")
python -m estimator calibrate --out "$out/profile-1.json" 2> "$out/calibrate-1.log" || tail -5 "$out/calibrate-1.log"
snap
# a device without a shipped profile is estimated with this run's calibration; a shipped one stays
[ -f "estimator/profiles/$key.json" ] || { mkdir -p estimator/profiles; cp "$out/profile-1.json" "estimator/profiles/$key.json"; }
common=(-q -p no:cacheprovider --bench-report-dir "$out" --bench-energy-window-s 1.5 --benchmark-disable-gc)
python -m pytest bench "${common[@]}" --bench-gpus "$gpus" 2>&1 | tail -3; snap
python -m pytest bench "${common[@]}" --bench-gpus 1 --bench-batch 1 --bench-seq 128 --bench-report-name "bench-$key-1x128" 2>&1 | tail -3; snap
python -m pytest bench "${common[@]}" --bench-gpus 1 --bench-batch 4 --bench-seq 2048 --bench-report-name "bench-$key-4x2048" 2>&1 | tail -3; snap
python -m pytest bench "${common[@]}" --bench-gpus "$gpus" --bench-report-name "bench-$key-archs" \
  --bench-models openai-community/gpt2,openai-community/gpt2-medium,Qwen/Qwen2.5-0.5B,mistralai/Mistral-7B-v0.1 2>&1 | tail -3; snap
python -m estimator calibrate --out "$out/profile-2.json" 2> "$out/calibrate-2.log" || tail -5 "$out/calibrate-2.log"
snap
