"""Decode GEMMs (few rows) and small copies of a calibrated profile (estimator/profile.py): priced
from lines and envelopes that one bad point cannot bend. The points below are those of the
2026-12-03 1 x H200 calibration (reports/measured/h200x1-1203b-*.json's loan), its slow outliers
included."""
from __future__ import annotations

import copy
import json

import pytest

from estimator import Workload, estimate
from estimator.profile import PROFILE_DIR, DecodeGemm, Profile, monotone_times

H200_SMALL_M = [[1, 512, 512, 4.751], [1, 2048, 2048, 7.043], [1, 2048, 8192, 25.491],   # 25.5: an outlier
                [1, 8192, 2048, 12.093], [1, 8192, 8192, 38.719], [4, 2048, 8192, 14.311],
                [16, 8192, 8192, 34.61], [64, 8192, 2048, 13.173], [1, 32768, 4096, 65.267],
                [1, 131072, 4096, 256.869]]


def test_decode_gemm_is_launch_plus_bytes_and_drops_the_outlier():
    fit = DecodeGemm.fit(H200_SMALL_M, 2)
    assert 3.0 < fit.launch_us < 6.0 and 3.8e6 < fit.bytes_per_us < 4.6e6     # ~4 us + 4.2 TB/s
    assert fit.us(1, 2048, 8192) == pytest.approx(fit.us(1, 8192, 2048), rel=1e-3)   # the same bytes
    assert fit.us(1, 2048, 8192) < 16.0                                             # not the 25.5 outlier
    assert fit.us(1, 4096, 4096) == pytest.approx(4.2 + 2 * 4096 * 4096 / 4.16e6, rel=0.1)


def _h200_with(**sections) -> Profile:
    raw = copy.deepcopy(json.loads((PROFILE_DIR / "h200-sxm-141gb.json").read_text()))
    raw.update(sections)
    return Profile(raw, "test")


def test_small_m_points_price_decode_gemms_by_their_bytes():
    """With small-M points the profile prices a 1-row GEMM by the fitted line, never by the FLOP
    rate of the nearest grid cell (28 us for 4096 x 4096 on that calibration, 12 us by bytes)."""
    raw = json.loads((PROFILE_DIR / "h200-sxm-141gb.json").read_text())
    prof = _h200_with(gemm=dict(raw["gemm"], float16=raw["gemm"]["float16"] + H200_SMALL_M))
    t = prof.gemm_us(1, 4096, 4096, "float16")
    assert 9.0 < t < 15.0
    assert prof.gemm_us(128, 4096, 4096, "float16") == pytest.approx(
        _h200_with().gemm_us(128, 4096, 4096, "float16"))     # the square grid as before
    assert prof.gemm_us(64, 4096, 4096, "float16") <= prof.gemm_us(128, 4096, 4096, "float16") * 1.01


def test_a_slow_small_copy_does_not_price_every_tiny_kernel():
    """A 1 MB copy timed launch-bound (7.2 us beside 4.2 us for 8 MB) takes the larger size's time."""
    assert monotone_times([[1048576, 7.208], [8388608, 4.165], [67108864, 35.087]]) == [
        (1048576.0, 4.165), (8388608.0, 4.165), (67108864.0, 35.087)]
    raw = json.loads((PROFILE_DIR / "h200-sxm-141gb.json").read_text())
    bad = _h200_with(copy=[[1048576, 7.208]] + raw["copy"][1:])
    assert bad.copy_us(4096) <= max(c[1] for c in raw["copy"][:2]) + 1e-9
    w = Workload(1, 128, "float16", new_tokens=16)
    good_e = estimate("facebook/opt-1.3b", "H200", w).generate_energy_j_per_token
    bad_e = estimate("facebook/opt-1.3b", "H200", w, profile=bad).generate_energy_j_per_token
    assert bad_e < good_e * 1.3
