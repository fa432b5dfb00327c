"""Probe: data / tensor parallel forward passes, one process per GPU (torchrun).
Usage: torchrun --nproc-per-node N probe/dist.py MODE MODEL BATCH SEQ OUT.jsonl"""
import json, os, sys, time
import torch, torch.distributed as dist
from transformers import AutoConfig, AutoModelForCausalLM
from estimator import nvml

mode, model, batch, seq, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
rank, local, world = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"])
torch.cuda.set_device(local)
dist.init_process_group("nccl", device_id=torch.device("cuda", local))
cfgdir = f"estimator/zoo/{model}"
cfg = AutoConfig.from_pretrained(cfgdir)
dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}[str(cfg.torch_dtype).replace("torch.", "")]
base = torch.cuda.memory_allocated()
if mode == "data":
    torch.manual_seed(0)
    with torch.device("cuda", local):
        m = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    b = batch // world
else:
    ckpt = f"/tmp/ckpt/{model}"
    if rank == 0 and not os.path.isdir(ckpt):
        with torch.device("cpu"):
            AutoModelForCausalLM.from_config(cfg, dtype=dtype).save_pretrained(ckpt)
    dist.barrier()
    m = AutoModelForCausalLM.from_pretrained(ckpt, tp_plan="auto", dtype=dtype)
    b = batch
m.eval()
ids = torch.randint(0, cfg.vocab_size, (b, seq), device="cuda")
def step():
    with torch.inference_mode():
        m(ids)
    torch.cuda.synchronize()
for _ in range(2):
    step()
dist.barrier()
times = []
for _ in range(7):
    dist.barrier(); t0 = time.perf_counter(); step(); dist.barrier(); times.append((time.perf_counter() - t0) * 1e3)
torch.cuda.reset_peak_memory_stats()
step()
peak = torch.cuda.max_memory_allocated()
dist.barrier()
idx = nvml.nvml_index(local)
e0 = nvml.energy_mj(idx); t0 = time.perf_counter(); n = 0
while True:
    step(); n += 1
    flag = torch.tensor([time.perf_counter() - t0 >= 1.5], device="cuda", dtype=torch.int32)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    if flag.item():
        break
dist.barrier(); window = time.perf_counter() - t0; e1 = nvml.energy_mj(idx)
res = dict(rank=rank, times_ms=times, peak_gb=peak / 1e9, base_gb=base / 1e9, energy_j=(e1 - e0) / 1e3, window_s=window, steps=n)
allres = [None] * world
dist.all_gather_object(allres, res)
if rank == 0:
    tokens = batch * seq
    med = sorted(max(r["times_ms"][i] for r in allres) for i in range(7))[3]
    row = dict(mode=mode, model=model, batch=batch, seq=seq, gpus=world, dtype=str(dtype), runtime_ms=med,
               memory_gb_per_gpu=[r["peak_gb"] for r in allres],
               energy_j_per_token=sum(r["energy_j"] for r in allres) / (tokens * n), gpu=torch.cuda.get_device_name(0), ranks=allres)
    with open(out, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(mode, model, world, f"{med:.2f} ms", [round(r['peak_gb'], 3) for r in allres], f"{row['energy_j_per_token']:.5f} J/tok")
dist.destroy_process_group()
