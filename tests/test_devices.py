"""The GPU database: every shipped file loads, carries sources, and resolves by short or NVML name."""
from __future__ import annotations

import json

import pytest

from estimator.device import DEVICES_DIR, NUMBER_FIELDS, TEXT_FIELDS, DeviceSpec, get_device, list_devices
from estimator.errors import EstimatorError

REQUIRED = {"rtx-a5000", "rtx-a6000", "a100-sxm4-40gb", "a100-sxm4-80gb", "h100-sxm5-80gb",
            "h100-pcie-80gb", "h200-sxm-141gb", "l4", "l40s", "rtx-4090"}


def test_required_devices_shipped_and_sorted() -> None:
    keys = [d.key for d in list_devices()]
    assert REQUIRED <= set(keys)
    assert keys == sorted(keys)
    assert len(keys) == len(list(DEVICES_DIR.glob("*.json")))


@pytest.mark.parametrize("path", sorted(DEVICES_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_every_field_has_a_source(path) -> None:
    data = json.loads(path.read_text())
    device = get_device(str(path))
    assert device.key == path.stem and device.kind == "gpu"
    for field in (*NUMBER_FIELDS, *TEXT_FIELDS):
        assert data[field]["source"].strip(), field
        assert device.sources[field] == data[field]["source"]
    assert all(value > 0 for value in device.tflops.values())


@pytest.mark.parametrize("name, key", [
    ("H100", "h100-sxm5-80gb"),
    ("NVIDIA H100 80GB HBM3", "h100-sxm5-80gb"),
    ("h100_sxm5_80gb", "h100-sxm5-80gb"),
    ("NVIDIA H100 PCIe", "h100-pcie-80gb"),
    ("H100-PCIe", "h100-pcie-80gb"),
    ("nvidia h200", "h200-sxm-141gb"),
    ("H200", "h200-sxm-141gb"),
    ("A100", "a100-sxm4-80gb"),
    ("A100-40GB", "a100-sxm4-40gb"),
    ("NVIDIA A100-SXM4-40GB", "a100-sxm4-40gb"),
    ("NVIDIA A100-SXM4-80GB", "a100-sxm4-80gb"),
    ("A5000", "rtx-a5000"),
    ("NVIDIA RTX A5000", "rtx-a5000"),
    ("a6000", "rtx-a6000"),
    ("NVIDIA L4", "l4"),
    ("L40S", "l40s"),
    ("NVIDIA GeForce RTX 4090", "rtx-4090"),
    ("4090", "rtx-4090"),
    ("RTX4090", "rtx-4090"),
])
def test_lookup(name: str, key: str) -> None:
    assert get_device(name).key == key


def test_unknown_device_suggests_close_names() -> None:
    with pytest.raises(EstimatorError) as err:
        get_device("H10")
    message = str(err.value)
    assert "\n" not in message
    assert "unknown device 'H10'" in message and "H100" in message


def test_missing_source_raises(tmp_path) -> None:
    data = json.loads((DEVICES_DIR / "l4.json").read_text())
    data["memory_gb"]["source"] = ""
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(data))
    with pytest.raises(EstimatorError, match="memory_gb") as err:
        get_device(str(path))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("change", [
    lambda d: d.pop("sm_count"),
    lambda d: d["memory_bandwidth_gb_s"].update(value=0),
    lambda d: d["power_limit_w"].update(value="700"),
])
def test_malformed_device_raises(change) -> None:
    data = json.loads((DEVICES_DIR / "l4.json").read_text())
    change(data)
    with pytest.raises(EstimatorError):
        DeviceSpec.from_json(data, "broken")


def test_matmul_tflops_uses_tf32_only_when_asked() -> None:
    h100 = get_device("H100")
    assert h100.matmul_tflops("float32") == h100.tflops["float32"]
    assert h100.matmul_tflops("float32", tf32=True) == h100.tflops["tf32"]
    assert h100.matmul_tflops("bfloat16", tf32=True) == h100.tflops["bfloat16"]
    assert h100.matmul_tflops("torch.float16") == h100.tflops["float16"]
    with pytest.raises(EstimatorError):
        h100.matmul_tflops("float8")


@pytest.mark.parametrize("device", list_devices(), ids=lambda d: d.key)
def test_sanity(device: DeviceSpec) -> None:
    assert device.tflops["bfloat16"] >= device.tflops["float32"]
    assert device.tflops["float16"] >= device.tflops["tf32"] >= device.tflops["float32"] * 0.99
    assert device.memory_bandwidth_gb_s > 0
    assert 0 < device.idle_power_w < device.power_limit_w


def test_relations_between_devices() -> None:
    h100, h200 = get_device("H100"), get_device("H200")
    assert h200.memory_bandwidth_gb_s > h100.memory_bandwidth_gb_s
    assert h200.tflops == h100.tflops
    assert get_device("A100-80GB").memory_bandwidth_gb_s > get_device("A100-40GB").memory_bandwidth_gb_s


MEASURED_USABLE_GB = {"h200-sxm-141gb": 150.1, "h100-sxm5-80gb": 85.0}


@pytest.mark.parametrize("path", sorted(DEVICES_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_usable_memory_is_torch_visible_capacity_with_its_source(path) -> None:
    data = json.loads(path.read_text())
    device = get_device(str(path))
    assert device.memory_usable_gb == data["memory_usable_gb"]["value"]
    source = data["memory_usable_gb"]["source"]
    if device.key in MEASURED_USABLE_GB:
        assert device.memory_usable_gb == MEASURED_USABLE_GB[device.key]
        assert source.startswith("measured on a lent GPU") and "total_memory" in source
    else:
        assert source.startswith("ESTIMATE, not measured:")
    # a board torch sees within a few percent of what it is sold as (GiB- or GB-marketed)
    assert 0.95 * device.memory_gb < device.memory_usable_gb < 1.08 * device.memory_gb


@pytest.mark.parametrize("value", [float("inf"), float("nan"), 0, -1])
def test_usable_memory_must_be_finite_and_positive(value) -> None:
    data = json.loads((DEVICES_DIR / "l4.json").read_text())
    data["memory_usable_gb"]["value"] = value
    with pytest.raises(EstimatorError, match="memory_usable_gb"):
        DeviceSpec.from_json(data, "broken")
    data.pop("memory_usable_gb")
    with pytest.raises(EstimatorError, match="memory_usable_gb"):
        DeviceSpec.from_json(data, "broken")


@pytest.mark.parametrize("name, others", [("A100", ["a100-sxm4-40gb"]), ("a100 sxm", ["a100-sxm4-40gb"]),
                                          ("H100", ["h100-pcie-80gb"])])
def test_an_alias_of_several_parts_says_which_it_took(name, others) -> None:
    from estimator.device import ambiguity_note
    note = ambiguity_note(name)
    assert note and get_device(name).name in note and all(get_device(k).name in note for k in others)


@pytest.mark.parametrize("name", ["H200", "A100-40GB", "NVIDIA H100 80GB HBM3", "L4", "H100-PCIe"])
def test_an_unambiguous_name_has_no_note(name) -> None:
    from estimator.device import ambiguity_note
    assert ambiguity_note(name) is None


def test_ambiguous_aliases_must_be_own_aliases() -> None:
    data = json.loads((DEVICES_DIR / "a100-sxm4-80gb.json").read_text())
    data["ambiguous_aliases"] = {"B200": ["a100-sxm4-40gb"]}
    with pytest.raises(EstimatorError, match="ambiguous_aliases"):
        DeviceSpec.from_json(data, "broken")
