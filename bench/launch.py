"""Start one process per GPU through torchrun, collect one typed result per rank, and never
leave a rank behind: the bench's data/tensor-parallel cases use it (bench/test_distributed.py).

The launcher runs ``python -m torch.distributed.run`` as a subprocess in its own session, hands
every rank the case as a JSON file (``argv[1]``) and a folder for results (``argv[2]``), and waits
at most ``timeout_s``. A rank that crashes or hangs fails the case with the last lines of what
the ranks wrote to stderr; every process that carries this launch's tag (torchrun gives its
workers sessions of their own, so a process-group kill would miss them) is then killed, and the
next case starts clean. NVLink multicast stays off for the children (reports/field_notes.md).
Several machines: every node runs the launcher with the same ``rdzv_endpoint`` and ``nnodes``.
torchrun's c10d rendezvous orders the nodes by host and agent pid, not by ``--node-rank``, so the
global ranks a node holds depend on which node joined first: every rank reports its global rank
and the node it ran on (``BENCH_NODE_RANK``, set by this node's launcher) and the launcher keeps
the results of its own node by what they report, never by assuming node k holds ranks k x nproc on.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

CHILD_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}
TAG_VAR = "BENCH_LAUNCH_ID"
NODE_VAR = "BENCH_NODE_RANK"   # the launcher's node rank, as every rank reports it
STDERR_TAIL_LINES = 20
REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class RankResult:
    """What one rank measured: step times between barriers, its peak memory, its GPU's energy."""
    rank: int
    times_ms: list[float] = field(default_factory=list)
    peak_memory_gb: float = 0.0
    energy_j: float | None = None
    window_s: float = 0.0
    steps: int = 0          # forward passes inside the energy window
    tokens: int = 0         # tokens this rank processed per step
    device: str = ""
    node: int = -1          # the launcher's --node-rank (write_rank_result fills it from NODE_VAR)


@dataclass
class LaunchResult:
    ok: bool
    ranks: list[RankResult]
    error: str = ""          # why the case failed: timeout, exit status, missing results
    stderr_tail: str = ""
    wall_s: float = 0.0


def write_rank_result(out_dir: str | Path, result: RankResult) -> None:
    """Called by a rank: its result, written atomically so the launcher never reads half a file."""
    if result.node < 0 and os.environ.get(NODE_VAR, "").isdigit():
        result = RankResult(**{**asdict(result), "node": int(os.environ[NODE_VAR])})
    path = Path(out_dir) / f"rank-{result.rank}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(result)))
    tmp.replace(path)


def torchrun_command(module: str, case_path: Path, out_dir: Path, nproc: int, nnodes: int = 1,
                     node_rank: int = 0, rdzv_endpoint: str | None = None, rdzv_id: str = "bench",
                     log_dir: Path | None = None) -> list[str]:
    """torchrun's command line; with `log_dir`, every rank's stderr goes to a file of its own
    there (--redirects 2), so a failure can quote the rank and not torchrun's summary."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", f"--nnodes={nnodes}"]
    if log_dir is not None:
        cmd += [f"--log-dir={log_dir}", "--redirects=2"]
    if rdzv_endpoint:
        cmd += ["--rdzv-backend=c10d", f"--rdzv-endpoint={rdzv_endpoint}", f"--rdzv-id={rdzv_id}",
                f"--node-rank={node_rank}"]
    else:
        cmd += ["--standalone"]
    return cmd + ["--max-restarts=0", "-m", module, str(case_path), str(out_dir)]


def tagged_pids(tag: str) -> list[int]:
    """Processes whose environment carries this launch's tag (Linux /proc; none elsewhere)."""
    needle = f"{TAG_VAR}={tag}".encode()
    pids = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except (OSError, ValueError):
            continue
    return [p for p in pids if p != os.getpid()]


def _kill_all(proc: subprocess.Popen, tag: str) -> None:
    """SIGTERM torchrun's group (it stops its workers), then SIGKILL whatever still carries the tag."""
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        for pid in tagged_pids(tag):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and (proc.poll() is None or tagged_pids(tag)):
            time.sleep(0.05)
        if proc.poll() is not None and not tagged_pids(tag):
            return


def _tail(path: Path, lines: int = STDERR_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def _ranks_tail(log_dir: Path, launcher_err: Path) -> str:
    """The last stderr lines of every local rank that wrote any, then torchrun's own."""
    parts = []
    for path in sorted(log_dir.glob("**/stderr.log")):
        tail = _tail(path)
        if tail.strip():
            parts.append(f"[{path.parent.name}] {tail}")
    return "\n".join(parts + [_tail(launcher_err, 5)])


def launch(module: str, case: dict, nproc: int, timeout_s: float, nnodes: int = 1, node_rank: int = 0,
           rdzv_endpoint: str | None = None, rdzv_id: str = "bench", env: dict | None = None) -> LaunchResult:
    """Run `module` on `nproc` ranks of this node; one RankResult per local rank, or the failure."""
    tag = uuid.uuid4().hex
    with tempfile.TemporaryDirectory(prefix="bench-launch-") as tmp:
        work = Path(tmp)
        case_path, out_dir, err_path = work / "case.json", work / "results", work / "stderr.txt"
        out_dir.mkdir()
        case_path.write_text(json.dumps(case))
        child_env = {**os.environ, **CHILD_ENV, **(env or {}), TAG_VAR: tag, NODE_VAR: str(node_rank)}
        child_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), child_env.get("PYTHONPATH")) if p)
        cmd = torchrun_command(module, case_path, out_dir, nproc, nnodes, node_rank, rdzv_endpoint, rdzv_id,
                               work / "logs")
        t0 = time.monotonic()
        with open(err_path, "wb") as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=child_env,
                                    start_new_session=True, cwd=str(REPO_ROOT))
            try:
                rc = proc.wait(timeout=timeout_s)
                error = "" if rc == 0 else f"ranks exited with status {rc}"
            except subprocess.TimeoutExpired:
                error = f"timed out after {timeout_s:g} s"
            _kill_all(proc, tag)
        wall = time.monotonic() - t0
        left = tagged_pids(tag)
        if left:
            error = (error + "; " if error else "") + f"processes left behind: {left}"
        ranks, problem = collect_ranks(out_dir, nproc, nnodes, node_rank)
        if not error and problem:
            error = problem
        return LaunchResult(ok=not error, ranks=ranks, error=error,
                            stderr_tail=_ranks_tail(work / "logs", err_path) if error else "", wall_s=wall)


def collect_ranks(out_dir: Path, nproc: int, nnodes: int, node_rank: int) -> tuple[list[RankResult], str]:
    """This node's results, sorted by global rank, matched by what each rank reports (its rank
    and node), and what is wrong with them ("" when there are `nproc` distinct ranks of this node)."""
    ranks, problems = [], []
    for path in sorted(out_dir.glob("rank-*.json")):
        try:
            result = RankResult(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            problems.append(f"unreadable result {path.name}: {exc}")
            continue
        if result.node != node_rank:
            problems.append(f"{path.name} reports node {result.node}, this is node {node_rank}")
        elif not 0 <= result.rank < nproc * nnodes or any(r.rank == result.rank for r in ranks):
            problems.append(f"{path.name} reports rank {result.rank}, outside 0..{nproc * nnodes - 1} or twice")
        else:
            ranks.append(result)
    ranks.sort(key=lambda r: r.rank)
    if len(ranks) != nproc:
        problems.insert(0, f"{len(ranks)} of {nproc} local ranks answered"
                           + (f" (got ranks {[r.rank for r in ranks]})" if ranks else ""))
    return ranks, "; ".join(problems) if len(ranks) != nproc or problems else ""
