"""`fits` compares the busiest GPU with the memory torch can allocate (memory_usable_gb), not the
marketing figure; the CLI's text output leads with the does-not-fit line."""
from __future__ import annotations

import dataclasses
import json

import pytest

from estimator import Workload, estimate, get_device
from estimator.__main__ import main
from estimator.device import DEVICES_DIR


@pytest.mark.parametrize("workload", [Workload(16, 1024), Workload(4, 512, new_tokens=4)], ids=["forward", "generate"])
def test_fits_uses_the_device_files_usable_capacity(workload) -> None:
    h100 = get_device("H100")
    usable = json.loads((DEVICES_DIR / "h100-sxm5-80gb.json").read_text())["memory_usable_gb"]["value"]
    assert h100.memory_usable_gb == usable == 85.0
    need = estimate("facebook/opt-6.7b", h100, workload).memory_gb
    at = estimate("facebook/opt-6.7b", dataclasses.replace(h100, memory_usable_gb=need), workload)
    below = estimate("facebook/opt-6.7b", dataclasses.replace(h100, memory_usable_gb=need * 0.999, memory_gb=1e3),
                     workload)
    assert at.fits and not below.fits          # the threshold moves with memory_usable_gb alone
    assert any(n.startswith("does not fit") and "usable" in n for n in below.notes)


def test_between_sold_and_usable_fits() -> None:
    """80 GB sold, 85.0e9 bytes visible: a workload needing 80-85 GB fits on an H100."""
    between = estimate("facebook/opt-6.7b", "H100", Workload(106, 1024))
    above = estimate("facebook/opt-6.7b", "H100", Workload(112, 1024))
    assert 80 < between.memory_gb <= 85.0 and between.fits
    assert above.memory_gb > 85.0 and not above.fits


def test_text_output_leads_with_does_not_fit(capsys) -> None:
    assert main(["estimate", "--model", "facebook/opt-6.7b", "--device", "L4", "--batch", "64"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("does not fit: needs") and "L4 has 23.7 GB usable (24 GB sold)" in out[0]
    assert not any(line.startswith("note: does not fit") for line in out)


def test_alias_note_in_text_and_json(capsys) -> None:
    assert main(["estimate", "--model", "facebook/opt-1.3b", "--device", "A100"]) == 0
    assert "note: device 'A100' taken as A100 SXM4 80GB" in capsys.readouterr().out
    assert main(["estimate", "--model", "facebook/opt-1.3b", "--device", "A100", "--json"]) == 0
    notes = json.loads(capsys.readouterr().out)["notes"]
    assert any("A100 SXM4 40GB" in n for n in notes)
    assert main(["estimate", "--model", "facebook/opt-1.3b", "--device", "A100-40GB", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["notes"] == []


def test_the_resolved_device_is_named_by_the_library_and_the_sweep(capsys) -> None:
    # issue 28: "H100" resolves to the SXM5 card; the CLI said so, the sweep and the library did not
    est = estimate("facebook/opt-1.3b", "H100")
    assert est.device == "H100 SXM5 80GB"
    assert sum("device 'H100' taken as H100 SXM5 80GB" in n and "H100 PCIe 80GB" in n for n in est.notes) == 1
    assert not any("taken as" in n for n in estimate("facebook/opt-1.3b", get_device("H100")).notes)
    assert main(["sweep", "--model", "facebook/opt-1.3b", "--device", "H100,L4", "--json"]) == 0
    out, err = capsys.readouterr()
    assert [r["device"] for r in json.loads(out)] == ["H100 SXM5 80GB", "L4"]
    assert err.count("note: device 'H100' taken as H100 SXM5 80GB") == 1 and "'L4'" not in err
    for extra in (["--csv"], ["--fit"]):
        assert main(["sweep", "--model", "facebook/opt-1.3b", "--device", "H100", *extra]) == 0
        out, err = capsys.readouterr()
        assert "H100 SXM5 80GB" in out and "taken as H100 SXM5 80GB" in err
