"""The deployment planner (issue 26): every figure of a candidate is the estimator's own for that
layout, cost follows from price and throughput, the batch search finds the largest power of two
that meets the targets, failing layouts say why, and the CLI writes text, CSV, JSON and a PNG."""
from __future__ import annotations

import csv
import io
import json
import math

import pytest

from estimator import EstimatorError, Workload, estimate, plan
from estimator.__main__ import main
from estimator.planner import PlanCandidate, layouts
from estimator.plan_plot import pareto
from estimator.prices import shipped_prices

OPT = "facebook/opt-1.3b"
LLAMA70 = "meta-llama/Llama-3.1-70B"


def run(capsys, *args: str) -> tuple[int, str, str]:
    try:
        rc = main(["plan", *args])
    except SystemExit as exc:   # argparse usage errors
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def replica_estimate(c: PlanCandidate, inp: int, out: int):
    return estimate(c.model, c.device_key, Workload(batch=c.batch, seq=inp, dtype=c.dtype, gpus=c.stages,
                                                    parallel="pipeline", new_tokens=out))


@pytest.fixture(scope="module")
def opt_plan():
    return plan(OPT, 1000, 200, tpot_ms=40, min_throughput_tokens_per_s=2000, devices=["H100", "L4"])


def test_layouts_split_each_count_into_stages_and_replicas():
    assert layouts([1, 2, 4]) == [(1, 1), (1, 2), (2, 1), (1, 4), (2, 2), (4, 1)]


def test_meeting_candidates_are_the_estimators_figures_and_meet_the_targets(opt_plan):
    meeting = opt_plan.meeting()
    assert meeting, "H100 serves OPT-1.3B at TPOT 40 ms and 2,000 tokens/s"
    costs = [c.usd_per_million_tokens for c in meeting]
    assert costs == sorted(costs)
    for c in meeting[:4]:
        est = replica_estimate(c, 1000, 200)
        assert est.fits and c.memory_gb == est.memory_gb and c.ttft_ms == est.ttft_ms and c.tpot_ms == est.tpot_ms
        assert c.tpot_ms <= 40 and c.throughput_tokens_per_s >= 2000 and c.meets and not c.reasons
        assert c.throughput_tokens_per_s == pytest.approx(c.replicas * est.throughput_tokens_per_s)
        price = shipped_prices()[c.device_key].usd_per_gpu_hour
        assert c.usd_per_million_tokens == pytest.approx(price * c.gpus / (3600 * c.throughput_tokens_per_s) * 1e6)
        low, high = c.usd_per_million_tokens_range
        assert low <= c.usd_per_million_tokens <= high
        assert c.tpot_ms_range == tuple(est.tpot_ms_range)


def test_batch_is_the_largest_power_of_two_that_meets_latency(opt_plan):
    best = opt_plan.meeting()[0]
    assert best.batch & (best.batch - 1) == 0
    bigger = replica_estimate(PlanCandidate(**{**best.__dict__, "batch": best.batch * 2}), 1000, 200)
    assert not bigger.fits or bigger.tpot_ms > 40
    assert best.batch in {p.batch for p in opt_plan.points if p.device_key == best.device_key and p.gpus == best.gpus}


def test_seventy_b_fails_with_reasons_counted():
    p = plan(LLAMA70, 2000, 500, ttft_ms=1000, tpot_ms=50, devices=["L4", "H200"], dtypes=["bfloat16"])
    assert not p.meeting()
    one_l4 = next(c for c in p.candidates if c.device_key == "l4" and c.gpus == 1)
    assert one_l4.reasons == ("does_not_fit",) and "weights alone" in one_l4.detail
    assert one_l4.memory_gb == pytest.approx(70_553_706_496 * 2 / 1e9 / 1)
    h200 = next(c for c in p.candidates if c.device_key == "h200-sxm-141gb" and c.gpus == 1)
    est = replica_estimate(h200, 2000, 500)
    assert est.fits and est.ttft_ms <= 1000 and est.tpot_ms > 50
    assert h200.reasons == ("misses_tpot",) and h200.shortfall == pytest.approx(est.tpot_ms / 50 - 1)
    assert p.failing()[0] is h200   # fits, smallest shortfall
    counts = p.reason_counts()
    assert counts == {r: sum(r in c.reasons for c in p.candidates) for r in counts}
    assert sum(counts.values()) >= len(p.candidates)


def test_replicas_multiply_throughput_to_reach_a_target():
    alone = plan(OPT, 1000, 200, tpot_ms=40, devices=["L4"], gpu_counts=[1], dtypes=["float16"]).meeting()[0]
    target = alone.throughput_tokens_per_s * 3
    p = plan(OPT, 1000, 200, tpot_ms=40, min_throughput_tokens_per_s=target, devices=["L4"], gpu_counts=[1, 2, 4],
             dtypes=["float16"])
    c = p.meeting()[0]
    assert (c.stages, c.replicas, c.batch) == (1, 4, alone.batch)
    assert c.throughput_tokens_per_s == pytest.approx(4 * alone.throughput_tokens_per_s)
    assert c.usd_per_million_tokens == pytest.approx(alone.usd_per_million_tokens)
    short = next(x for x in p.candidates if (x.stages, x.replicas) == (1, 2))
    assert short.reasons == ("misses_throughput",)


def test_concurrency_is_the_least_number_of_requests_in_flight():
    p = plan(OPT, 500, 100, concurrency=24, devices=["H100"], gpu_counts=[1, 2], dtypes=["float16"])
    for c in p.candidates:
        assert c.batch * c.replicas >= 24 and c.concurrency == c.batch * c.replicas
    first = {(x.stages, x.replicas): min(q.batch for q in p.points if (q.stages, q.replicas) == (x.stages, x.replicas))
             for x in p.candidates}
    assert first[(1, 1)] == 24 and first.get((1, 2), 12) == 12


def test_more_replicas_than_needed_are_not_searched():
    p = plan(OPT, 500, 100, devices=["H100"], dtypes=["float16"])   # no target: one GPU meets it
    assert [c.replicas for c in p.candidates if c.stages == 1] == [1] and p.skipped > 0


def test_refusal_is_a_reason():
    p = plan("openai-community/gpt2", 1000, 200, devices=["H100"], dtypes=["float16"], gpu_counts=[1])
    assert p.candidates[0].reasons == ("refused",) and "1024" in p.candidates[0].detail


@pytest.mark.parametrize("kwargs, words", [
    (dict(input_tokens=-5), "input_tokens"),
    (dict(output_tokens=0), "output_tokens"),
    (dict(concurrency=0), "concurrency"),
    (dict(ttft_ms=-1.0), "ttft_ms"),
    (dict(tpot_ms=math.nan), "tpot_ms"),
    (dict(min_throughput_tokens_per_s=math.inf), "min_throughput"),
    (dict(devices=["B300"]), "B300"),
    (dict(devices=[]), "at least one device"),
    (dict(dtypes=["int4"]), "int4"),
    (dict(gpu_counts=[0]), "gpu counts"),
    (dict(gpu_counts=[1, 1000]), "above 64"),
    (dict(output_tokens=1, tpot_ms=20.0), "at least 2"),
    (dict(max_batch=0), "max_batch"),
    (dict(prices={"H100": 2.0}), "no price for"),
])
def test_bad_library_input_raises_one_line(kwargs, words):
    args = dict(models=OPT, input_tokens=100, output_tokens=10) | kwargs
    with pytest.raises(EstimatorError) as exc:
        plan(args.pop("models"), args.pop("input_tokens"), args.pop("output_tokens"), **args)
    assert words in str(exc.value) and "\n" not in str(exc.value)


def test_pareto_front_drops_dominated_points():
    def point(tpot, cost):
        return PlanCandidate(model="m", device="d", device_key="d", dtype="float16", gpus=1, stages=1, replicas=1,
                             batch=1, meets=True, reasons=(), detail="", usd_per_gpu_hour=1.0,
                             usd_per_million_tokens=cost, tpot_ms=tpot)
    pts = [point(10, 5.0), point(20, 3.0), point(30, 4.0), point(15, 5.5), point(40, 1.0)]
    assert [(p.tpot_ms, p.usd_per_million_tokens) for p in pareto(pts, "tpot_ms")] == [(10, 5.0), (20, 3.0), (40, 1.0)]


# ---- CLI ----------------------------------------------------------------------------------------

ARGS = ("--model", OPT, "--input-tokens", "1000", "--output-tokens", "200", "--tpot-ms", "40", "--devices", "H100,L4",
        "--gpus", "1,2")


def test_cli_text_names_the_cheapest_and_why_the_rest_fail(capsys):
    rc, out, err = run(capsys, *ARGS, "--min-throughput", "2000")
    assert rc == 0, err
    assert "TPOT <= 40 ms, throughput >= 2,000 tokens/s" in out
    assert "cheapest first" in out and "closest miss on each device" in out and "misses throughput" in out
    first = out.split("cheapest first")[1].splitlines()[3]
    assert first.startswith("H100 SXM5 80GB") and "(" in first   # figures with their ranges


def test_cli_json_csv_and_out_agree(capsys, tmp_path):
    rc, out, _ = run(capsys, *ARGS, "--json")
    data = json.loads(out)
    assert rc == 0 and data["targets"]["tpot_ms"] == 40 and data["meeting"]
    assert data["meeting"][0]["usd_per_million_tokens"] <= data["meeting"][-1]["usd_per_million_tokens"]
    assert set(data["prices"]) == {"h100-sxm5-80gb", "l4"} and data["prices"]["l4"]["source"]
    rc, out, _ = run(capsys, *ARGS, "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rc == 0 and len(rows) == data["layouts"] == len(data["meeting"]) + len(data["failing"])
    assert {"usd_per_million_tokens_low", "tpot_ms_high", "layout", "reasons"} <= set(rows[0])
    for suffix in (".json", ".csv", ".txt"):
        target = tmp_path / f"plan{suffix}"
        rc, out, err = run(capsys, *ARGS, "--out", str(target))
        assert rc == 0 and out == "" and "wrote" in err and target.stat().st_size > 0
    assert json.loads((tmp_path / "plan.json").read_text())["layouts"] == data["layouts"]


def test_cli_png_marks_the_pareto_front(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "plan.png"
    rc, _, err = run(capsys, *ARGS, "--png", str(png), "--plot-x", "ttft")
    assert rc == 0 and "Pareto front" in err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_png_without_matplotlib_is_one_line(capsys, tmp_path, monkeypatch):
    import builtins
    real = builtins.__import__

    def no_mpl(name, *a, **k):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_mpl)
    rc, _, err = run(capsys, *ARGS, "--png", str(tmp_path / "x.png"))
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "needs matplotlib" in err


@pytest.mark.parametrize("args, words", [
    (["--input-tokens", "-5"], "--input-tokens"),
    (["--output-tokens", "0"], "--output-tokens"),
    (["--ttft-ms", "-1"], "--ttft-ms"),
    (["--tpot-ms", "nan"], "--tpot-ms"),
    (["--min-throughput", "0"], "--min-throughput"),
    (["--concurrency", "0"], "--concurrency"),
    (["--devices", "H100,B300"], "B300"),
    (["--devices", " , "], "names no device"),
    (["--gpus", "0"], "gpus"),
    (["--gpus", "1:100000"], "gpu"),
    (["--output-tokens", "1", "--tpot-ms", "20"], "TPOT target"),
    (["--prices", "nowhere.json"], "prices file"),
    (["--top", "0"], "--top"),
    (["--dtype", "int8"], "int8"),
    (["--model", "no/such-model"], "no/such-model"),
    (["--out", "plan.xlsx"], "unknown suffix"),
    (["--input-tokens", "many"], "invalid int"),
    (["--plot-x", "cost"], "invalid choice"),
])
def test_cli_bad_input_exits_2_with_one_line(capsys, args, words):
    base = {"--model": OPT, "--input-tokens": "100", "--output-tokens": "10", "--devices": "H100"}
    extra = dict(zip(args[::2], args[1::2]))
    argv = [x for k, v in (base | extra).items() for x in (k, v)]
    rc, out, err = run(capsys, *argv)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert words in err


def test_cli_prices_file_missing_a_device_exits_2(capsys, tmp_path):
    prices = tmp_path / "p.csv"
    prices.write_text("device,usd_per_gpu_hour\nH100,2.0\n")
    rc, _, err = run(capsys, "--model", OPT, "--input-tokens", "100", "--output-tokens", "10", "--devices", "H100,L4",
                     "--prices", str(prices))
    assert rc == 2 and "no price for l4" in err and len(err.strip().splitlines()) == 1
    rc, out, _ = run(capsys, "--model", OPT, "--input-tokens", "100", "--output-tokens", "10", "--devices", "H100",
                     "--prices", str(prices), "--json")
    assert rc == 0 and json.loads(out)["prices"]["h100-sxm5-80gb"]["usd_per_gpu_hour"] == 2.0
