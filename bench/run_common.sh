# Sourced by the single-GPU run scripts (run_moe.sh, run_host.sh): the output folder $out from $1,
# snap() tarring it into $OUT/results.tgz, the GPU's settings, and the pytest options every stage shares.
set -u
out=${1:?output folder}
mkdir -p "$out"
snap() { [ -n "${OUT:-}" ] && tar czf "$OUT/results.tgz" -C "$(dirname "$out")" "$(basename "$out")"; true; }
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm --format=csv > "$out/nvidia-smi.csv" 2>&1
common=(-q -p no:cacheprovider --bench-report-dir "$out" --bench-gpus 1)
