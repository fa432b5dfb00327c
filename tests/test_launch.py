"""The launcher on the CPU over gloo: results, a rank that hangs, a rank that exits, two nodes."""
import socket
import threading
import time

import pytest

from bench.launch import launch, tagged_pids

FAKE = "tests.dist_fake_worker"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_one_result_per_rank() -> None:
    res = launch(FAKE, {}, nproc=2, timeout_s=60)
    assert res.ok, res.error + res.stderr_tail
    assert [r.rank for r in res.ranks] == [0, 1]
    assert [r.times_ms for r in res.ranks] == [[1.0], [2.0]]


def test_rank_that_never_answers_times_out_and_leaves_nothing() -> None:
    res = launch(FAKE, {"fail_rank": 1, "how": "hang"}, nproc=2, timeout_s=8)
    assert not res.ok and "timed out after 8 s" in res.error
    assert "left behind" not in res.error


def test_rank_that_exits_reports_its_stderr() -> None:
    res = launch(FAKE, {"fail_rank": 0, "how": "exit"}, nproc=2, timeout_s=60)
    assert not res.ok and "exited with status" in res.error
    assert "rank 0 fails on purpose" in res.stderr_tail
    assert "left behind" not in res.error


def two_nodes(first: int, delay_s: float, timeout_s: float = 120) -> dict:
    """Two nodes of two ranks on this machine: node `first` starts, the other `delay_s` later."""
    endpoint = f"127.0.0.1:{_port()}"
    out = {}

    def node(r: int) -> None:
        out[r] = launch(FAKE, {}, nproc=2, timeout_s=timeout_s, nnodes=2, node_rank=r, rdzv_endpoint=endpoint,
                        rdzv_id="cpu-test")

    threads = {r: threading.Thread(target=node, args=(r,)) for r in (0, 1)}
    threads[first].start()
    time.sleep(delay_s)
    threads[1 - first].start()
    for t in threads.values():
        t.join()
    return out


def check_two_nodes(out: dict) -> None:
    for r in (0, 1):
        assert out[r].ok, out[r].error + out[r].stderr_tail
        assert len(out[r].ranks) == 2 and all(x.node == r for x in out[r].ranks)
        assert all(x.tokens == 4 for x in out[r].ranks)   # WORLD_SIZE seen by every rank
    assert sorted(x.rank for r in (0, 1) for x in out[r].ranks) == [0, 1, 2, 3]


# torchrun's rendezvous gives the first global ranks to whichever node it sorts first (host, then
# agent pid), not to --node-rank 0: node 1 starting first used to lose both nodes' results.
@pytest.mark.parametrize("first, delay_s", [(0, 1.0), (1, 1.0), (1, 6.0)],
                         ids=["node-0-first", "node-1-first", "node-0-joins-late"])
def test_two_nodes_of_two_ranks(first: int, delay_s: float) -> None:
    check_two_nodes(two_nodes(first, delay_s))


def test_results_are_matched_by_what_ranks_report(tmp_path) -> None:
    from bench.launch import RankResult, collect_ranks, write_rank_result
    for rank in (2, 3):   # node 0 holding global ranks 2 and 3 is fine
        write_rank_result(tmp_path, RankResult(rank=rank, node=0))
    ranks, problem = collect_ranks(tmp_path, nproc=2, nnodes=2, node_rank=0)
    assert problem == "" and [r.rank for r in ranks] == [2, 3]
    write_rank_result(tmp_path, RankResult(rank=1, node=1))
    (tmp_path / "rank-9.json").write_text("[1")
    ranks, problem = collect_ranks(tmp_path, nproc=2, nnodes=2, node_rank=0)
    assert [r.rank for r in ranks] == [2, 3]
    assert "reports node 1" in problem and "unreadable result rank-9.json" in problem


def test_no_tagged_process_outside_a_launch() -> None:
    assert tagged_pids("no-such-launch") == []
