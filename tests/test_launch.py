"""The launcher on the CPU over gloo: results, a rank that hangs, a rank that exits, two nodes."""
import socket
import threading

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
    assert res.wall_s < 8 + 10
    assert "left behind" not in res.error


def test_rank_that_exits_reports_its_stderr() -> None:
    res = launch(FAKE, {"fail_rank": 0, "how": "exit"}, nproc=2, timeout_s=60)
    assert not res.ok and "exited with status" in res.error
    assert "rank 0 fails on purpose" in res.stderr_tail
    assert "left behind" not in res.error


def test_two_nodes_of_two_ranks() -> None:
    endpoint = f"127.0.0.1:{_port()}"
    out = {}

    def node(r: int) -> None:
        out[r] = launch(FAKE, {}, nproc=2, timeout_s=90, nnodes=2, node_rank=r, rdzv_endpoint=endpoint,
                        rdzv_id="cpu-test")

    threads = [threading.Thread(target=node, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in (0, 1):
        assert out[r].ok, out[r].error + out[r].stderr_tail
        assert all(x.tokens == 4 for x in out[r].ranks)   # WORLD_SIZE seen by every rank
    assert sorted(x.rank for r in (0, 1) for x in out[r].ranks) == [0, 1, 2, 3]


def test_no_tagged_process_outside_a_launch() -> None:
    assert tagged_pids("no-such-launch") == []
