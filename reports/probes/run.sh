#!/usr/bin/env bash
# Probes on a multi-GPU machine: data/tensor parallel (torchrun) and generate on one GPU. Output: $1
set -u
out=${1:?}; mkdir -p "$out"; n=$(nvidia-smi -L | wc -l)
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
tr() { timeout 120 torchrun --nproc-per-node "$1" probe/dist.py "$2" "$3" 16 1024 "$out/dist.jsonl" 2>&1 | grep -v "Warn\|deprecat\|^ *$" | tail -2; }
for g in 2 4; do
  [ "$g" -le "$n" ] || continue
  for m in facebook/opt-1.3b AICrossSim/clm-60m AICrossSim/clm-1.1b; do tr $g data $m; done
  for m in AICrossSim/clm-200m AICrossSim/clm-1.1b; do tr $g tensor $m; done
done
timeout 240 python probe/gen.py "$out/gen.jsonl" AICrossSim/clm-60m 1 512 128 AICrossSim/clm-1.1b 1 512 128 facebook/opt-1.3b 1 512 128 \
  AICrossSim/clm-60m 8 1024 64 AICrossSim/clm-1.1b 8 1024 64 facebook/opt-1.3b 8 1024 64 2>&1 | grep -v "Warn\|deprecat"
