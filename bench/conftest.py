"""Parametrizes the forward-pass benchmark from the bench options (see bench/options.py)."""
from __future__ import annotations

import pytest

from bench.cases import cpu_case, detect, device_tag, enumerate_cases
from bench.plugin import get_bench_config
from bench.distributed import DISTRIBUTED_MODES
from estimator.errors import EstimatorError, UnmodelledConfig
from estimator.model import load_model


def pytest_configure(config: pytest.Config) -> None:
    """A misspelt --bench-models name is a one-line usage error, not a collection traceback."""
    if config.option.help or config.option.version:
        return  # the plugin reads no options in help mode, so there is no session to check
    for name in get_bench_config(config).models:
        try:
            load_model(name)
        except UnmodelledConfig:
            continue   # a quantized config: its cases skip with the reason (bench.cases.spec_or_skip)
        except EstimatorError as exc:
            raise pytest.UsageError(f"--bench-models: {exc}") from None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" not in metafunc.fixturenames:
        return
    cfg = get_bench_config(metafunc.config)
    cases = enumerate_cases(cfg.models, cfg.batch, cfg.seq, cfg.gpus, cfg.parallel, cfg.dtype, device_tag())
    if metafunc.module.__name__.endswith("test_distributed"):  # one process per GPU: data / tensor
        cases = [c for c in cases if c.gpus > 1 and c.parallel in DISTRIBUTED_MODES]
    else:  # one process: single GPU, pipeline, the CPU case
        cases = [c for c in cases if c.parallel not in DISTRIBUTED_MODES or c.gpus == 1]
        if detect().gpu_count == 0:
            cases.append(cpu_case(cfg.models, cfg.dtype))
    metafunc.parametrize("case", cases, ids=[c.id for c in cases])


@pytest.fixture(scope="session")
def bench_profile(request: pytest.FixtureRequest):
    """The profile every case estimates with (bench/calibration.py): shipped, cached, calibrated
    now or transferred, chosen by --bench-calibrate / --bench-profile; a Resolved whose profile
    is None carries the reason the cases skip. The CPU case's profile is a full CPU calibration
    (about 30 s; the quick grid's estimates of one case varied from 136 to 235 ms), cached too."""
    from bench.calibration import session_profile
    machine = detect()
    return session_profile(request.config, machine.gpu_name, machine.gpu_count, machine.device)
