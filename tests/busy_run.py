"""Not collected by pytest: the README's test command N times in a row while another process
keeps one CPU busy (issue 20: the suite's verdict must not depend on machine load).

``python tests/busy_run.py 10 [--burners 1] [--json out.json]`` starts the burners
(``python -c "while True: pass"``), runs ``python -m pytest -q -p no:cacheprovider`` N times from
the repository root, prints one line per run (pass/fail, seconds, failed test ids) and the
count; stops the burners it started (by their pid) however it ends. Exit status 1 if any run
failed."""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMAND = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]


def cpu_row() -> str:
    """The CPU bench case of the last run: measured, estimated, error and its note."""
    try:
        doc = json.loads((ROOT / "reports" / "bench-cpu.json").read_text())
        row = next(c for c in doc["cases"] if "-cpu-" in c["case_id"])
        return (f"{row['measured']['runtime_ms']:.0f} ms measured, {row['estimated']['runtime_ms']:.0f} ms "
                f"estimated, {row['error']['runtime_ms'] * 100:+.1f} %, {row['status']}; {row.get('note')}")
    except (OSError, ValueError, KeyError, TypeError, StopIteration):
        return ""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", type=int, nargs="?", default=10)
    ap.add_argument("--burners", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.burners)]
    records = []
    try:
        for i in range(args.runs):
            t0 = time.monotonic()
            r = subprocess.run(COMMAND, cwd=ROOT, capture_output=True, text=True)
            seconds = time.monotonic() - t0
            failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", r.stdout, re.M)
            summary = (r.stdout.strip().splitlines() or [""])[-1]
            cpu = cpu_row()
            records.append({"run": i + 1, "ok": r.returncode == 0, "rc": r.returncode, "seconds": round(seconds, 1),
                            "failed": failed, "summary": summary, "cpu_case": cpu})
            print(f"run {i + 1}: {'pass' if r.returncode == 0 else 'FAIL'} in {seconds:.0f} s: {summary}"
                  + (f" {failed}" if failed else "") + (f"; CPU case: {cpu}" if cpu else ""), flush=True)
    finally:
        for proc in burners:
            proc.kill()
            proc.wait()
    passed = sum(r["ok"] for r in records)
    print(f"{passed} of {len(records)} runs passed with {args.burners} CPU burner(s) on {os.cpu_count()} CPUs")
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1) + "\n")
    return 0 if passed == len(records) else 1


if __name__ == "__main__":
    sys.exit(main())
