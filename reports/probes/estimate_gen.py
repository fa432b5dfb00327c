"""Estimate vs the generate probes (h200x4-gen.jsonl): TTFT, TPOT, the whole call, peak memory,
energy per generated token, and the plain forward with / without the cache. Prints only; the CI
gate does not read the probes. Usage: python reports/probes/estimate_gen.py"""
import json
from pathlib import Path

from estimator import estimate, Workload, load_model
rows=[json.loads(l) for l in open(Path(__file__).with_name('h200x4-gen.jsonl'))]
def pct(e,m): return 100*(e-m)/m
for r in rows:
    dt=r['dtype'].replace('torch.','')
    est=estimate(r['model'],'H200',Workload(batch=r['batch'],seq=r['seq'],dtype=dt,new_tokens=r['new_tokens']))
    f=estimate(r['model'],'H200',Workload(batch=r['batch'],seq=r['seq'],dtype=dt))
    nf=estimate(r['model'],'H200',Workload(batch=r['batch'],seq=r['seq'],dtype=dt,use_cache=False))
    print(f"{r['model']:22s} {r['batch']}x{r['seq']}+{r['new_tokens']}: ttft {est.ttft_ms:6.2f}/{r['ttft_ms']:6.2f} ({pct(est.ttft_ms,r['ttft_ms']):+5.1f}%) "
          f"tpot {est.tpot_ms:6.2f}/{r['tpot_ms']:6.2f} ({pct(est.tpot_ms,r['tpot_ms']):+5.1f}%) gen {est.generate_ms:7.1f}/{r['generate_ms']:7.1f} ({pct(est.generate_ms,r['generate_ms']):+5.1f}%) "
          f"mem {est.memory_gb:.4f}/{r['peak_gb']:.4f} ({pct(est.memory_gb,r['peak_gb']):+5.2f}%) "
          f"E {est.generate_energy_j_per_token:.3f}/{r['generate_energy_j_per_token']:.3f} ({pct(est.generate_energy_j_per_token,r['generate_energy_j_per_token']):+5.1f}%) "
          f"| fwd {f.runtime_ms:6.2f}/{r['forward_cache_ms']:6.2f} ({pct(f.runtime_ms,r['forward_cache_ms']):+5.1f}%) nocache {nf.runtime_ms:6.2f}/{r['forward_nocache_ms']:6.2f} ({pct(nf.runtime_ms,r['forward_nocache_ms']):+5.1f}%)")
