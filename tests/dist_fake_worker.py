"""A rank for the launcher's CPU tests (gloo): answers, hangs or crashes as the case says."""
import json
import os
import sys
import time

import torch.distributed as dist

from bench.launch import RankResult, write_rank_result


def main(case_path: str, out_dir: str) -> None:
    case = json.loads(open(case_path).read())
    rank = int(os.environ["RANK"])
    dist.init_process_group("gloo")
    if case.get("fail_rank") == rank:
        if case["how"] == "exit":
            print(f"rank {rank} fails on purpose", file=sys.stderr, flush=True)
            sys.exit(3)
        time.sleep(3600)  # never answers
    dist.barrier()
    write_rank_result(out_dir, RankResult(rank=rank, times_ms=[1.0 + rank], tokens=int(os.environ["WORLD_SIZE"]),
                                          device=os.environ.get("LOCAL_RANK", "")))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
