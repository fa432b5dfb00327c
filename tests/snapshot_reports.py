"""Re-render every recorded run in reports/measured/ through the bench's report writers, to prove
a restructuring changes no byte of what the plugin writes.

    python tests/snapshot_reports.py OUT_DIR            # RST and JSON of each recorded run
    diff -r BEFORE_DIR OUT_DIR

Each recorded results file's rows (without the error dicts the writer adds) go through
render_rst and results_document again, as the plugin does at the end of a run.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run as a script from anywhere

from bench.report import render_rst, results_document  # noqa: E402

MEASURED = Path(__file__).resolve().parent.parent / "reports" / "measured"


def main(out_dir: str) -> int:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for path in sorted(MEASURED.glob("*.json")):
        doc = json.loads(path.read_text())
        rows = [{k: v for k, v in r.items() if k != "error"} for key in ("cases", "skipped")
                for r in doc.get(key) or ()]
        (out / f"{path.stem}.rst").write_text(render_rst(rows, doc.get("machine")))
        document = results_document(rows, doc.get("machine"), doc.get("config") or {})
        (out / f"{path.stem}.json").write_text(json.dumps(document, indent=1, allow_nan=False) + "\n")
        n += 1
    print(f"{n} recorded runs re-rendered -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
