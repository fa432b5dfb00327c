"""GPU rental prices, US dollars per GPU-hour, for the deployment planner (``planner.py``).

The shipped table (``prices.json``) holds one on-demand cloud list price per device of the
database, each with its source and date (written offline: verify before relying on it). A prices
file replaces it: JSON, either ``{"H100": 2.5, ...}`` or ``{"devices": {"H100":
{"usd_per_gpu_hour": 2.5, "source": "..."}}}``, or CSV with a header ``device,usd_per_gpu_hour``
(and optionally ``source``). Device names are any name ``get_device`` knows (key, name, alias);
every device a plan searches must have a price, else one EstimatorError naming the ones missing.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

from .device import DeviceSpec, get_device
from .errors import EstimatorError
from .jsonin import parse_json, read_json

PRICES_FILE = Path(__file__).with_name("prices.json")
MAX_PRICE = 1e6   # dollars per GPU-hour: above any real rental, a typo beyond it
PRICE_FIELD = "usd_per_gpu_hour"


@dataclass(frozen=True)
class Price:
    """One device's price per GPU-hour and where it comes from."""

    device_key: str
    usd_per_gpu_hour: float
    source: str
    date: str = ""


def _price_value(value: Any, where: str, name: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value.strip().removeprefix("$"))
        except ValueError:
            raise EstimatorError(f"{where}: price of {name!r} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise EstimatorError(f"{where}: price of {name!r} must be a finite number, got {value!r}")
    if not 0 < value <= MAX_PRICE:
        raise EstimatorError(f"{where}: price of {name!r} must be above 0 and at most {MAX_PRICE:g} "
                             f"dollars per GPU-hour, got {value:g}")
    return float(value)


def _resolve(name: Any, where: str) -> DeviceSpec:
    if not isinstance(name, str) or not name.strip():
        raise EstimatorError(f"{where}: device names must be non-empty strings, got {name!r}")
    try:
        return get_device(name.strip())
    except EstimatorError as exc:
        raise EstimatorError(f"{where}: {exc}") from None


def price_table(entries: Iterable[tuple[Any, Any, str, str]], where: str) -> dict[str, Price]:
    """(device name, price, source, date) entries -> {device key: Price}; a name that is no known
    device, a price that is not a positive finite number, or one device named twice raise."""
    table: dict[str, Price] = {}
    for name, value, source, date in entries:
        dev = _resolve(name, where)
        if dev.key in table:
            raise EstimatorError(f"{where}: device {dev.key} is priced twice ({name!r})")
        table[dev.key] = Price(dev.key, _price_value(value, where, str(name)), source or where, date)
    if not table:
        raise EstimatorError(f"{where}: no prices in it")
    return table


def _json_entries(data: Any, where: str) -> list[tuple[Any, Any, str, str]]:
    if isinstance(data, dict) and "devices" in data:
        data = data["devices"]
    if not isinstance(data, dict):
        raise EstimatorError(f"{where}: expected an object of device -> price (or {{\"devices\": {{...}}}}), "
                             f"got {type(data).__name__}")
    entries = []
    for name, value in data.items():
        if isinstance(name, str) and name.startswith("_"):   # comments such as "_about"
            continue
        if isinstance(value, dict):
            if PRICE_FIELD not in value:
                raise EstimatorError(f"{where}: device {name!r} has no {PRICE_FIELD!r}")
            source, date = value.get("source", ""), value.get("date", "")
            if not isinstance(source, str) or not isinstance(date, str):
                raise EstimatorError(f"{where}: source and date of {name!r} must be strings")
            entries.append((name, value[PRICE_FIELD], source, date))
        else:
            entries.append((name, value, "", ""))
    return entries


def _csv_entries(text: str, where: str) -> list[tuple[Any, Any, str, str]]:
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip() for c in reader.fieldnames or []]
    if "device" not in columns or PRICE_FIELD not in columns:
        raise EstimatorError(f"{where}: CSV needs a header with columns device,{PRICE_FIELD} "
                             f"(optionally source, date), got {','.join(columns) or 'none'}")
    entries = []
    for number, raw in enumerate(reader, start=2):
        if None in raw:   # DictReader's restkey: cells beyond the header
            raise EstimatorError(f"{where}: line {number} has more cells than the header")
        row = {k.strip(): (v or "").strip() for k, v in raw.items()}
        if not row.get("device") and not row.get(PRICE_FIELD):
            continue   # blank line
        entries.append((row.get("device", ""), row.get(PRICE_FIELD, ""), row.get("source", ""), row.get("date", "")))
    return entries


def read_prices(path: str | Path) -> dict[str, Price]:
    """A prices file (.json or .csv) as {device key: Price}; EstimatorError (one line) otherwise."""
    where = f"prices file {path}"
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        return price_table(_json_entries(read_json(path, where, allow_constants=False), where), where)
    if suffix == ".csv":
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise EstimatorError(f"{where}: {exc.strerror if isinstance(exc, OSError) else exc}") from None
        return price_table(_csv_entries(text, where), where)
    raise EstimatorError(f"{where}: unknown suffix {suffix or '(none)'!r}: use .json or .csv")


@lru_cache(maxsize=1)
def shipped_prices() -> dict[str, Price]:
    """The shipped table, estimator/prices.json."""
    return dict(price_table(_json_entries(parse_json(PRICES_FILE.read_text(encoding="utf-8"), str(PRICES_FILE)),
                                          "shipped prices"), "shipped prices"))


def prices_for(devices: Iterable[DeviceSpec], prices: str | Path | Mapping[str, Any] | None = None,
               ) -> dict[str, Price]:
    """{device key: Price} for every device in `devices`: from `prices` (a file path, or a
    mapping of device name -> dollars per GPU-hour or Price), else the shipped table. A device
    without a price raises EstimatorError naming every one missing."""
    if prices is None:
        table, where = shipped_prices(), "the shipped prices (estimator/prices.json)"
    elif isinstance(prices, (str, Path)):
        table, where = read_prices(prices), f"prices file {prices}"
    elif isinstance(prices, Mapping):
        where = "prices"
        table = price_table(((n, p.usd_per_gpu_hour, p.source, p.date) if isinstance(p, Price) else (n, p, "", "")
                             for n, p in prices.items()), where)
    else:
        raise EstimatorError(f"prices must be a file path or a mapping of device -> dollars per GPU-hour, "
                             f"got {type(prices).__name__}")
    devices = list(devices)
    missing = [d.key for d in devices if d.key not in table]
    if missing:
        raise EstimatorError(f"{where} has no price for {', '.join(missing)}: add them, or narrow --devices "
                             f"to the priced ones ({', '.join(table)})")
    return {d.key: table[d.key] for d in devices}
