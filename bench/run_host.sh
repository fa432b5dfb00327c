#!/usr/bin/env bash
# One lent single-GPU H200 call for issue #17 (2026-12-01): the host-bound matrix (the six models
# of the user's table at batch 1/16/64 x seq 128/1024/2048) and generation (64 new tokens at
# batch 1/16 x seq 128/512), each case estimated with the host time measured in it.
# Usage: bash bench/run_host.sh OUTDIR   (results also tarred into $OUT/results.tgz after each stage)
source "$(dirname "$0")/run_common.sh"
timeout 330 python -m pytest bench/test_forward.py "${common[@]}" --bench-batch 1,16,64 --bench-seq 128,1024,2048 \
  -k "gpu and not (opt-6.7b and 64x)" --bench-report-name host-matrix > "$out/host-matrix.log" 2>&1; snap
timeout 200 python -m pytest bench/test_generate.py "${common[@]}" --bench-new-tokens 64 --bench-batch 1,16 \
  --bench-seq 128,512 --bench-models AICrossSim/clm-60m,AICrossSim/clm-1.1b,facebook/opt-1.3b \
  --bench-report-name host-generate > "$out/host-generate.log" 2>&1; snap
grep -h -E "passed|failed|error" "$out"/*.log | tail -5
