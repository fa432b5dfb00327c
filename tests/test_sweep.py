"""python -m estimator sweep and estimator.sweep / estimator.fit: grids, refusals as rows, the
outputs (table, CSV, JSON, PNG) written and read back, --fit answers, help with defaults."""
from __future__ import annotations

import csv
import dataclasses
import io
import json

import pytest

from estimator import Workload, estimate, get_device, list_devices
from estimator.__main__ import main
from estimator.errors import EstimatorError
from estimator.fit import MAX_BATCH, FitAnswer, fit_answers
from estimator.sweep import SweepRow, SweepSpec, parse_ints, run_sweep, sort_rows

FIT_MODELS = "facebook/opt-6.7b,mistralai/Mistral-7B-v0.1,Qwen/Qwen3-30B-A3B"


def run(capsys, *args: str) -> tuple[int, str, str]:
    try:
        rc = main(["sweep", *args])
    except SystemExit as exc:      # argparse's usage errors
        rc = exc.code
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.mark.parametrize("text, values", [
    ("16", (16,)), ("1,8,16", (1, 8, 16)), ("1:8", tuple(range(1, 9))), ("1:64:x2", (1, 2, 4, 8, 16, 32, 64)),
    ("1:60:x4", (1, 4, 16)), ("2:10:4", (2, 6, 10)), ("1,4:6,64", (1, 4, 5, 6, 64)), ("8,8,1", (8, 1)),
])
def test_range_syntax(text, values) -> None:
    assert parse_ints(text) == values


@pytest.mark.parametrize("text", ["", "x", "8:1", "1:8:0", "1:8:x1", "1:2:3:4", "0", "-4", "1:10000000"])
def test_bad_ranges_raise_one_line(text) -> None:
    with pytest.raises(EstimatorError) as err:
        parse_ints(text, "batch")
    assert "\n" not in str(err.value)


def test_rows_match_estimate_and_refusals_are_rows() -> None:
    spec = SweepSpec(models=("facebook/opt-1.3b",), devices=("H100",), batches=(4, 5), gpus=(1, 2, 3),
                     parallels=("all",), seqs=(1024, 4096))
    rows = run_sweep(spec)
    # 2 batches x 2 seqs x (1 single + 2 x 3 modes)
    assert len(rows) == 28 and all(isinstance(r, SweepRow) for r in rows)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rows[0].batch = 1  # type: ignore[misc]
    refused = {(r.batch, r.seq, r.gpus, r.parallel): r.error for r in rows if not r.ok}
    assert "exceeds the 2048 positions" in refused[(4, 4096, 1, "single")]
    assert "divisible by 2, got 5" in refused[(5, 1024, 2, "data")]
    assert "tensor parallel over 3 GPUs" in refused[(4, 1024, 3, "tensor")]
    assert all(r.runtime_ms is None and r.fits is None for r in rows if not r.ok)
    ok = [r for r in rows if r.ok]
    assert ok and all("\n" not in (r.error or "") for r in rows)
    for r in ok[:4]:
        est = estimate("facebook/opt-1.3b", "H100", Workload(r.batch, r.seq, r.dtype, r.gpus,
                                                              "pipeline" if r.parallel == "single" else r.parallel))
        assert (r.runtime_ms, r.memory_gb, r.energy_j_per_token, r.throughput_tokens_per_s, r.fits, r.bound) == \
               (est.runtime_ms, est.memory_gb, est.energy_j_per_token, est.throughput_tokens_per_s, est.fits, est.bound)
        assert r.memory_usable_gb == get_device("H100").memory_usable_gb


def test_generation_rows_have_ttft_and_tpot() -> None:
    rows = run_sweep(SweepSpec(models=("facebook/opt-1.3b",), devices=("H200",), batches=(1,), seqs=(128,),
                               new_tokens=(0, 16), gpus=(1, 2)))
    by = {(r.gpus, r.new_tokens): r for r in rows}
    assert by[(1, 16)].ttft_ms > 0 and by[(1, 16)].tpot_ms > 0 and by[(1, 0)].ttft_ms is None
    assert by[(2, 16)].ok and by[(2, 16)].ttft_ms > by[(1, 16)].ttft_ms   # a 2-GPU pipeline's generate


def test_all_devices_and_model_dtype() -> None:
    rows = run_sweep(SweepSpec(models=("mistralai/Mistral-7B-v0.1",), devices=("all", "H100")))
    assert [r.device for r in rows] == [d.name for d in list_devices()]
    assert {r.dtype for r in rows} == {"bfloat16"}   # the config's own


def test_unknown_names_stop_the_sweep() -> None:
    with pytest.raises(EstimatorError, match="unknown device"):
        run_sweep(SweepSpec(models=("facebook/opt-1.3b",), devices=("H10",)))
    with pytest.raises(EstimatorError, match="unknown model"):
        run_sweep(SweepSpec(models=("facebook/opt-13b",), devices=("H100",)))


def test_sort() -> None:
    rows = run_sweep(SweepSpec(models=("facebook/opt-1.3b",), devices=("H100", "L4"), batches=(1, 3, 16),
                               gpus=(1, 2), parallels=("data", "pipeline")))
    fast = sort_rows(rows, "runtime")
    times = [r.runtime_ms for r in fast if r.ok]
    assert times == sorted(times) and not any(r.ok for r in fast[len(times):])
    tput = [r.throughput_tokens_per_s for r in sort_rows(rows, "throughput") if r.ok]
    assert tput == sorted(tput, reverse=True)
    energy = [r.energy_j_per_token for r in sort_rows(rows, "energy") if r.ok]
    assert energy == sorted(energy)


def test_table_marks_refused_and_not_fitting(capsys) -> None:
    rc, out, _ = run(capsys, "--model", "facebook/opt-1.3b", "--device", "L4", "--batch", "16,64,5",
                     "--gpus", "2", "--parallel", "tensor,data")
    assert rc == 0
    assert "NO (> 23.7 GB)" in out                                  # batch 64 tensor: 24.6 GB
    assert "needs a batch divisible by 2, got 5" in out             # the refused row, its reason
    assert out.strip().splitlines()[-1] == "6 cases: 1 refused, 1 do not fit"


def test_csv_json_and_out_files_read_back(capsys, tmp_path) -> None:
    args = ("--model", "facebook/opt-1.3b,AICrossSim/clm-60m", "--device", "H100,L4", "--batch", "1:16:x4",
            "--gpus", "1,2", "--parallel", "data")
    rows = run_sweep(SweepSpec(models=("facebook/opt-1.3b", "AICrossSim/clm-60m"), devices=("H100", "L4"),
                               batches=(1, 4, 16), gpus=(1, 2), parallels=("data",)))
    rc, out, _ = run(capsys, *args, "--json")
    assert rc == 0
    data = json.loads(out)
    assert [SweepRow(**d) for d in data] == rows
    rc, out, _ = run(capsys, *args, "--csv")
    table = list(csv.DictReader(io.StringIO(out)))
    assert len(table) == len(rows) and set(table[0]) == {f.name for f in dataclasses.fields(SweepRow)}
    assert [float(t["runtime_ms"]) if t["runtime_ms"] else None for t in table] == [r.runtime_ms for r in rows]
    assert [t["error"] for t in table] == [r.error or "" for r in rows]
    for suffix in ("csv", "json", "txt"):
        path = tmp_path / f"sweep.{suffix}"
        rc, out, err = run(capsys, *args, "--out", str(path))
        assert rc == 0 and out == "" and f"wrote {path}" in err
        text = path.read_text()
        if suffix == "json":
            assert json.loads(text) == data
        elif suffix == "csv":
            assert list(csv.DictReader(io.StringIO(text))) == table
        else:
            assert "runtime ms" in text and "facebook/opt-1.3b" in text
    rc, _, err = run(capsys, *args, "--out", str(tmp_path / "sweep.xls"))
    assert rc == 2 and "unknown suffix" in err


def test_png_plot_written(capsys, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "mem.png"
    rc, _, err = run(capsys, "--model", "mistralai/Mistral-7B-v0.1", "--device", "L4,A100", "--batch", "1:64:x2",
                     "--plot", "memory", "--x", "batch", "--png", str(png))
    assert rc == 0 and "2 lines" in err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib import image
    assert image.imread(str(png)).shape[:2] == (500, 800)


def test_plot_series_are_all_visible_and_capacity_lines_name_their_device() -> None:
    # issue 28: the L4 curve lay exactly under the A100-40GB one; "usable 23.7 GB" named no device
    pytest.importorskip("matplotlib")
    from matplotlib import pyplot
    from estimator import sweep_plot
    rows = run_sweep(SweepSpec(models=("facebook/opt-6.7b",), devices=("L4", "A100-40GB"), batches=(1, 2, 4, 8)))
    fig, count = sweep_plot.figure(rows, "memory", "batch")
    ax = fig.axes[0]
    series = [l for l in ax.get_lines() if len(l.get_xdata()) > 1 and l.get_label().startswith("device=")]
    assert count == 2 and len(series) == 2
    assert series[0].get_ydata().tolist() == series[1].get_ydata().tolist()    # the same memory on both
    assert len({(l.get_linestyle(), l.get_marker(), l.get_fillstyle()) for l in series}) == 2
    assert {l.get_label() for l in series} == {f"device={get_device(d).name}" for d in ("L4", "A100-40GB")}
    texts = {t.get_text() for t in ax.texts}
    assert texts == {f"{get_device(d).name}: usable {get_device(d).memory_usable_gb:g} GB" for d in ("L4", "A100-40GB")}
    pyplot.close(fig)
    styles = [sweep_plot.series_style(i) for i in range(32)]
    assert len({(s["linestyle"], s["marker"]) for s in styles}) == 32


def test_plot_without_matplotlib_is_one_line(capsys, tmp_path, monkeypatch) -> None:
    import builtins
    real = builtins.__import__

    def no_mpl(name, *a, **k):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_mpl)
    rc, _, err = run(capsys, "--model", "facebook/opt-1.3b", "--device", "H100", "--batch", "1,2",
                     "--plot", "runtime", "--png", str(tmp_path / "x.png"))
    assert rc == 2 and err.strip().count("\n") == 0 and "needs matplotlib" in err


@pytest.mark.parametrize("args, word", [
    (["--plot", "speed", "--png", "x.png"], "unknown plot metric"),
    (["--plot", "runtime"], "--png"),
    (["--plot", "runtime", "--png", "x.png", "--x", "colour"], "unknown plot axis"),
    (["--sort", "cost"], "invalid choice"),
    (["--batch", "1:x"], "bad batch"),
    (["--parallel", "expert"], "unknown parallel mode"),
])
def test_bad_sweep_input_exits_2(capsys, args, word) -> None:
    rc, out, err = run(capsys, "--model", "facebook/opt-1.3b", "--device", "H100", *args)
    assert rc == 2 and word in err and len(err.strip().splitlines()) == 1


def test_fit_answers_three_models_on_every_device(capsys) -> None:
    rc, out, _ = run(capsys, "--model", FIT_MODELS, "--device", "all", "--fit", "--json")
    assert rc == 0
    answers = [FitAnswer(**d) for d in json.loads(out)]
    assert len(answers) == 3 * len(list_devices())
    assert {(a.model, a.device) for a in answers} == {(m, d.name) for m in FIT_MODELS.split(",")
                                                      for d in list_devices()}
    for a in answers:
        assert a.gpus is not None, a                      # every one fits on at most 8 GPUs
        dev = get_device(a.device)
        w = dict(batch=a.batch, seq=a.seq, dtype=a.dtype, gpus=a.gpus,
                 parallel="pipeline" if a.parallel == "single" else a.parallel)
        assert estimate(a.model, dev, Workload(**w)).fits
        smaller = [g for g in (1, 2, 4, 8) if g < a.gpus]
        for g in smaller:                                   # no smaller count fits in any mode
            for mode in ("pipeline", "data", "tensor"):
                try:
                    assert not estimate(a.model, dev, Workload(**{**w, "gpus": g, "parallel": mode})).fits
                except EstimatorError:
                    pass
        step = a.gpus if a.parallel == "data" else 1
        assert a.max_batch >= a.batch and a.max_batch < MAX_BATCH
        assert estimate(a.model, dev, Workload(**{**w, "batch": a.max_batch})).fits
        assert not estimate(a.model, dev, Workload(**{**w, "batch": a.max_batch + step})).fits
    by = {(a.model, a.device): a for a in answers}
    assert by[("Qwen/Qwen3-30B-A3B", "H200 SXM 141GB")].gpus == 1     # 61 GB of bf16 weights
    assert by[("Qwen/Qwen3-30B-A3B", "L4")].gpus > 2
    rc, table, _ = run(capsys, "--model", FIT_MODELS, "--device", "all", "--fit")
    assert rc == 0 and "fewest GPUs" in table and "largest batch" in table
    assert len(table.strip().splitlines()) == 2 + len(answers)


def test_fit_reports_why_nothing_fits() -> None:
    [a] = fit_answers(SweepSpec(models=("Qwen/Qwen3-30B-A3B",), devices=("L4",), dtypes=("float32",),
                                parallels=("all",)), (1, 2))
    assert a.gpus is None and a.max_batch is None and "fits on none of 1, 2 GPUs" in a.reason
    assert not a.requested_fits


def test_fit_gives_the_largest_smaller_batch_when_the_requested_one_fits_nowhere(capsys) -> None:
    # issue 28: "fits on none of 4 GPUs: needs 48.0 GB" although batch 15 fit
    spec = SweepSpec(models=("facebook/opt-6.7b",), devices=("L4",), seqs=(2048,), batches=(16,),
                     parallels=("all",))
    [a] = fit_answers(spec, (1,))
    assert not a.requested_fits and a.batch == 16 and a.gpus == 1 and a.parallel == "single"
    w = dict(seq=2048, dtype="float16")
    assert not estimate("facebook/opt-6.7b", "L4", Workload(batch=16, **w)).fits
    assert 1 <= a.max_batch < 16 and estimate("facebook/opt-6.7b", "L4", Workload(batch=a.max_batch, **w)).fits
    assert not estimate("facebook/opt-6.7b", "L4", Workload(batch=a.max_batch + 1, **w)).fits
    assert a.memory_gb <= a.memory_usable_gb and a.runtime_ms > 0
    assert "batch 16 fits on none of 1 GPUs" in a.reason and f"batch {a.max_batch} fits on 1 x single" in a.reason
    [b] = fit_answers(spec, (1, 2))     # on more GPUs the requested batch fits: answered as before
    assert b.requested_fits and b.gpus == 2 and b.max_batch >= 16 and b.reason is None
    rc, out, _ = run(capsys, "--model", "facebook/opt-6.7b", "--device", "L4", "--seq", "2048", "--gpus", "1",
                     "--fit", "--json")
    assert rc == 0 and json.loads(out)[0]["max_batch"] == a.max_batch


def test_fit_batch_search_caps() -> None:
    [a] = fit_answers(SweepSpec(models=("AICrossSim/clm-60m",), devices=("H200",), seqs=(8,), parallels=("all",)),
                      (1,))
    assert a.gpus == 1 and a.max_batch == MAX_BATCH and a.max_batch_capped


def test_help_shows_defaults_and_choices(capsys) -> None:
    for command, words in (("estimate", ["(default: 16)", "(default: 1024)", "{pipeline,data,tensor}",
                                         "(default: pipeline)", "(default: 1)"]),
                           ("sweep", ["(default: 16)", "1:64:x2", "--fit", "--plot", "{energy,runtime,throughput}",
                                      "(default: 0)", "'all'"])):
        with pytest.raises(SystemExit) as ex:
            main([command, "--help"])
        assert ex.value.code == 0
        out = " ".join(capsys.readouterr().out.split())
        for w in words:
            assert w in out, (command, w)


def test_models_sizes_readable(capsys) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith("Qwen/Qwen3-30B-A3B "))
    assert "30.5B" in line and "M " not in line.split("qwen3_moe")[1][:12]
    # issue 28: Gemma-3-1b (999.9M parameters) was listed as "1000M"
    gemma = next(l for l in out.splitlines() if l.startswith("google/gemma-3-1b-pt "))
    assert gemma.split()[2] == "1.0B" and "1000M" not in out


@pytest.mark.parametrize("count, text", [(999.9e6, "1.0B"), (999.4e6, "999M"), (99.96e6, "100M"), (99.94e6, "99.9M"),
                                         (6.7e9, "6.7B"), (999.6e3, "1.0M"), (350e3, "350K"), (999, "999")])
def test_parameter_counts_never_read_1000_of_a_unit(count: float, text: str) -> None:
    from estimator.sweep_output import format_params
    assert format_params(count) == text


# ---- streamed sweeps (issue 26: a million cases to CSV in bounded memory) -------------------------

STREAM_SPEC = SweepSpec(models=("AICrossSim/clm-60m", "facebook/opt-350m"), devices=("H100", "L4"),
                        batches=(1, 2, 3, 64), seqs=(1, 7, 128, 3000), new_tokens=(0, 4))


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_a_streamed_sweep_writes_the_text_of_the_listed_one(fmt):
    """Chunk by chunk (here 5 cases at a time), refused rows included, the streamed text equals
    what render() makes of run_sweep's list."""
    from estimator import sweep_output
    from estimator.sweep import iter_sweep
    rows = run_sweep(STREAM_SPEC)
    assert any(not r.ok for r in rows) and any(r.ok for r in rows)
    out = io.StringIO()
    assert sweep_output.stream(iter_sweep(STREAM_SPEC, chunk=5), out, fmt) == len(rows)
    assert out.getvalue() == sweep_output.render(rows, fmt, SweepRow)


def test_a_streamed_sweep_prices_one_chunk_at_a_time(monkeypatch):
    """A million-case sweep's first row is ready once its first chunk is priced: nothing holds
    more than STREAM_CASES rows (the bounded memory a million-case CSV needs)."""
    import estimator.sweep as sweep
    priced = []
    real = sweep.estimate_rows
    monkeypatch.setattr(sweep, "estimate_rows", lambda m, d, cases, *a: priced.append(len(cases)) or real(m, d, cases, *a))
    spec = SweepSpec(models=("AICrossSim/clm-60m",), devices=("H100",), batches=tuple(range(1, 1001)),
                     seqs=tuple(range(1, 1001)))
    rows = sweep.iter_sweep(spec)
    first = next(rows)
    assert first.ok and priced == [sweep.STREAM_CASES]


def test_the_cli_streams_csv_and_json_files_and_stdout(capsys, tmp_path):
    args = ("--model", "AICrossSim/clm-60m", "--device", "H100", "--batch", "1:3", "--seq", "64,128")
    for name in ("rows.csv", "rows.json"):
        rc, _, err = run(capsys, *args, "--out", str(tmp_path / name))
        assert rc == 0 and f"({6} cases)" in err, err
    with open(tmp_path / "rows.csv") as f:
        assert len(list(csv.DictReader(f))) == 6
    assert len(json.loads((tmp_path / "rows.json").read_text())) == 6
    rc, out, _ = run(capsys, *args, "--csv")
    assert rc == 0 and out == (tmp_path / "rows.csv").read_text()
