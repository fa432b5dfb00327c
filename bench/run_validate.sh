#!/usr/bin/env bash
# The lent single-GPU H200 calls of issue 25 / 24 (2026-12-03), each stage's results tarred into
# $OUT/results.tgz as it ends. Usage: bash bench/run_validate.sh OUTDIR generate|matrix
#   generate: bench/test_generate.py, 64 new tokens at batch 1/16 x seq 128/512, the six models
#             of the user's table (issue 25: at least 22 of 24 inside the bounds);
#   matrix:   the README main job with --bench-calibrate always (calibration <= 60 s, the six
#             GPU-bound rows within 5 %), then the host-bound matrix (batch 1/64 x seq 128/2048),
#             then the new families' configs (MODELS, layer counts as shipped).
source "$(dirname "$0")/run_common.sh"
stage=${2:?generate, matrix or both}
if [ "$stage" = generate ] || [ "$stage" = both ]; then
  timeout "${GEN_TIMEOUT:-470}" python -m pytest bench/test_generate.py "${common[@]}" --bench-new-tokens 64 --bench-batch 1,16 \
    --bench-seq 128,512 --bench-report-name gen-64 > "$out/gen.log" 2>&1; snap
fi
if [ "$stage" = both ]; then
  timeout 170 python -m pytest bench/ -q -p no:cacheprovider --bench-report-dir "$out" --bench-calibrate always \
    --bench-report-name main-calibrate-always > "$out/main.log" 2>&1
  cp -r "${XDG_CACHE_HOME:-$HOME/.cache}/llm-perf-estimator" "$out/cache" 2>/dev/null; snap
fi
if [ "$stage" = matrix ]; then
  timeout 170 python -m pytest bench/ -q -p no:cacheprovider --bench-report-dir "$out" --bench-calibrate always \
    --bench-report-name main-calibrate-always > "$out/main.log" 2>&1
  cp -r "${XDG_CACHE_HOME:-$HOME/.cache}/llm-perf-estimator" "$out/cache" 2>/dev/null; snap
  timeout 200 python -m pytest bench/test_forward.py "${common[@]}" --bench-batch 1,64 --bench-seq 128,2048 \
    -k gpu --bench-report-name host-matrix > "$out/matrix.log" 2>&1; snap
  if [ -n "${MODELS:-}" ]; then
    timeout 150 python -m pytest bench/test_forward.py "${common[@]}" --bench-models "$MODELS" --bench-batch 1,8 \
      --bench-seq 128,2048 -k gpu --bench-report-name new-families > "$out/families.log" 2>&1; snap
  fi
fi
grep -h -E "passed|failed|error|calibration done" "$out"/*.log | tail -8
