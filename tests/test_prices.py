"""GPU prices for the planner: the shipped table covers every device with a source and a date;
prices files (JSON, CSV) are read by any device name and every malformed one is one line."""
from __future__ import annotations

import json

import pytest

from estimator import EstimatorError, list_devices
from estimator.prices import PRICES_FILE, Price, prices_for, read_prices, shipped_prices


def test_shipped_prices_cover_every_device_with_source_and_date():
    table = shipped_prices()
    assert set(table) == {d.key for d in list_devices()}
    for price in table.values():
        assert 0.1 < price.usd_per_gpu_hour < 20
        assert price.date and "verify" in price.source and "http" in price.source
    raw = json.loads(PRICES_FILE.read_text())
    assert set(raw["devices"]) == set(table)


@pytest.mark.parametrize("name, text", [
    ("flat.json", '{"H100": 2.5, "l4": "0.5"}'),
    ("nested.json", '{"devices": {"NVIDIA H100 80GB HBM3": {"usd_per_gpu_hour": 2.5, "source": "mine"}, '
                    '"L4": {"usd_per_gpu_hour": 0.5}}}'),
    ("table.csv", "device,usd_per_gpu_hour,source\nH100,$2.5,quote\n\nL4,0.5,\n"),
])
def test_prices_files_read_by_any_device_name(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    table = read_prices(path)
    assert {k: p.usd_per_gpu_hour for k, p in table.items()} == {"h100-sxm5-80gb": 2.5, "l4": 0.5}
    assert all(isinstance(p, Price) and p.source for p in table.values())


@pytest.mark.parametrize("name, text, words", [
    ("bad.json", "{not json", "prices file"),
    ("list.json", "[1, 2]", "expected an object"),
    ("empty.json", "{}", "no prices"),
    ("neg.json", '{"H100": -1}', "above 0"),
    ("zero.json", '{"H100": 0}', "above 0"),
    ("nan.json", '{"H100": NaN}', "NaN"),
    ("bool.json", '{"H100": true}', "must be a finite number"),
    ("word.json", '{"H100": "cheap"}', "must be a number"),
    ("unknown.json", '{"B300": 5}', "B300"),
    ("twice.json", '{"H100": 2, "h100-sxm5-80gb": 3}', "priced twice"),
    ("nofield.json", '{"devices": {"H100": {"price": 2}}}', "usd_per_gpu_hour"),
    ("huge.json", '{"H100": 1e300}', "at most"),
    ("header.csv", "gpu,price\nH100,2\n", "CSV needs a header"),
    ("cells.csv", "device,usd_per_gpu_hour\nH100,2,extra\n", "more cells"),
    ("empty.csv", "", "CSV needs a header"),
    ("prices.yaml", "H100: 2", "unknown suffix"),
])
def test_malformed_prices_are_one_line(tmp_path, name, text, words):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(EstimatorError) as exc:
        read_prices(path)
    assert words in str(exc.value) and "\n" not in str(exc.value)


def test_missing_file_and_missing_device(tmp_path):
    with pytest.raises(EstimatorError, match="prices file .*missing.json"):
        read_prices(tmp_path / "missing.json")
    devices = [d for d in list_devices() if d.key in ("l4", "h100-sxm5-80gb")]
    with pytest.raises(EstimatorError, match="no price for l4"):
        prices_for(devices, {"H100": 2.0})
    assert prices_for(devices)["l4"] == shipped_prices()["l4"]
