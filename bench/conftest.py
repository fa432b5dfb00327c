"""Parametrizes the forward-pass benchmark from the bench options (see bench/options.py)."""
from __future__ import annotations

import pytest

from bench.cases import cpu_case, detect, device_tag, enumerate_cases
from bench.plugin import get_bench_config
from estimator.errors import EstimatorError
from estimator.model import load_model


def pytest_configure(config: pytest.Config) -> None:
    """A misspelt --bench-models name is a one-line usage error, not a collection traceback."""
    for name in get_bench_config(config).models:
        try:
            load_model(name)
        except EstimatorError as exc:
            raise pytest.UsageError(f"--bench-models: {exc}") from None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" not in metafunc.fixturenames:
        return
    cfg = get_bench_config(metafunc.config)
    cases = enumerate_cases(cfg.models, cfg.batch, cfg.seq, cfg.gpus, cfg.parallel, cfg.dtype, device_tag())
    if detect().gpu_count == 0:
        cases.append(cpu_case(cfg.models, cfg.dtype))
    metafunc.parametrize("case", cases, ids=[c.id for c in cases])


@pytest.fixture(scope="session")
def cpu_profile():
    """A CPU description measured when the run starts (about 7 s of microbenchmarks; the quick
    grid's estimates of the same case varied from 136 to 235 ms between sessions)."""
    from estimator.calibrate import calibrate
    return calibrate(device="cpu", quick=False, log=lambda *_: None)
