"""Not collected by pytest: the two-node launcher test N times with the nodes started in random
order and random delays (0-3 s, sometimes a node 8 s late). ``python tests/launch_orders.py 20``
prints one line per run and the count that passed; exit status 1 if any failed."""
from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from test_launch import check_two_nodes, two_nodes  # noqa: E402


def main(runs: int, seed: int | None = None) -> int:
    rng = random.Random(seed)
    passed = 0
    for i in range(runs):
        first, delay = rng.choice((0, 1)), rng.choice((0.0, rng.uniform(0, 3), 8.0))
        t0 = time.monotonic()
        try:
            check_two_nodes(two_nodes(first, delay))
            verdict = "pass"
            passed += 1
        except AssertionError as exc:
            verdict = f"FAIL {str(exc).splitlines()[0]}"
        print(f"run {i + 1}: node {first} first, other {delay:.1f} s later: {verdict} ({time.monotonic() - t0:.1f} s)",
              flush=True)
    print(f"{passed} of {runs} passed")
    return 0 if passed == runs else 1


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20, int(sys.argv[2]) if len(sys.argv) > 2 else None))
