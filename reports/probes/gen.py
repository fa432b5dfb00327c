"""Probe: model.generate on one GPU: TTFT (max_new_tokens=1), whole call, decode steps, memory, energy.
Usage: python probe/gen.py OUT.jsonl MODEL BATCH SEQ NEW [MODEL BATCH SEQ NEW ...]"""
import json, sys, time, statistics
import torch
from transformers import AutoConfig, AutoModelForCausalLM
from estimator import nvml
out = sys.argv[1]; args = sys.argv[2:]
for i in range(0, len(args), 4):
    model, batch, seq, new = args[i], int(args[i + 1]), int(args[i + 2]), int(args[i + 3])
    cfg = AutoConfig.from_pretrained(f"estimator/zoo/{model}")
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}[str(cfg.torch_dtype).replace("torch.", "")]
    torch.manual_seed(0)
    with torch.device("cuda:0"):
        m = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    m.eval()
    ids = torch.randint(0, cfg.vocab_size, (batch, seq), device="cuda:0")
    kw = dict(do_sample=False, eos_token_id=None, pad_token_id=0)
    def gen(n):
        with torch.inference_mode():
            r = m.generate(ids, max_new_tokens=n, min_new_tokens=n, **kw)
        torch.cuda.synchronize()
        assert r.shape[1] == seq + n, r.shape
    def fwd(cache):
        with torch.inference_mode():
            m(ids, use_cache=cache)
        torch.cuda.synchronize()
    def timeit(fn, rounds):
        fn(); fn(); ts = []
        for _ in range(rounds):
            t0 = time.perf_counter(); fn(); ts.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(ts), ts
    ttft, ttft_r = timeit(lambda: gen(1), 7)
    whole, whole_r = timeit(lambda: gen(new), 5)
    fwd_c, _ = timeit(lambda: fwd(True), 7)
    fwd_nc, _ = timeit(lambda: fwd(False), 7)
    torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated(); gen(new); peak = torch.cuda.max_memory_allocated()
    e0 = nvml.energy_mj(nvml.nvml_index(0)); t0 = time.perf_counter(); n = 0
    while time.perf_counter() - t0 < 1.5:
        gen(new); n += 1
    e1 = nvml.energy_mj(nvml.nvml_index(0)); w = time.perf_counter() - t0
    row = dict(model=model, batch=batch, seq=seq, new_tokens=new, gpu=torch.cuda.get_device_name(0), dtype=str(dtype),
               ttft_ms=ttft, generate_ms=whole, tpot_ms=(whole - ttft) / max(1, new - 1), forward_cache_ms=fwd_c,
               forward_nocache_ms=fwd_nc, peak_gb=peak / 1e9, weights_gb=base / 1e9,
               generate_energy_j_per_token=(e1 - e0) / 1e3 / (n * batch * new), energy_window_s=w, ttft_rounds=ttft_r, generate_rounds=whole_r)
    with open(out, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(model, batch, seq, new, f"ttft {ttft:.2f} tpot {row['tpot_ms']:.2f} gen {whole:.1f} ms peak {row['peak_gb']:.3f} GB fwd {fwd_c:.2f}/{fwd_nc:.2f}")
    del m; torch.cuda.empty_cache()
