"""LogGrid.many (issue 26): many points through numpy give the scalar path's values (the same
brackets, weights and corner order; numpy's log / exp may differ from math's in the last bit)."""
from __future__ import annotations

import itertools
import random

import pytest

from estimator.interp import LogGrid

np = pytest.importorskip("numpy")


def _grid(dims: int, seed: int) -> LogGrid:
    rng = random.Random(seed)
    axes = [sorted(rng.sample([2 ** i for i in range(1, 14)], 5)) for _ in range(dims)]
    pts = []
    for i, coords in enumerate(itertools.product(*axes)):
        if i % 3:   # a sparse grid: cells filled from the nearest covered one
            pts.append((*coords, rng.uniform(1, 1e4)))
    return LogGrid(pts)


@pytest.mark.parametrize("dims", [1, 2, 3, 4])
def test_many_equals_the_scalar_call(dims):
    grid = _grid(dims, dims)
    rng = random.Random(7)
    n = 500
    coords = [[rng.choice([rng.uniform(0.5, 2e4), 2.0 ** rng.randint(0, 14)]) for _ in range(n)] for _ in range(dims)]
    many = grid.many(*coords)
    scalar = [grid(*(c[i] for c in coords)) for i in range(n)]
    rel = max(abs(a - b) / abs(b) for a, b in zip(many, scalar))
    assert rel <= 1e-12, rel
