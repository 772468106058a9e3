"""The molecule scenarios (molecule/<role>/), run against the shared lab: clear, fault, --check changes nothing,
converge, idempotence, verify (healthy, truth check clean), clear."""
from __future__ import annotations

import pytest
from ansible_run import ROOT, run_molecule

# *_history scenarios need the lab in the history layout: test_history_layout.py runs them.
SCENARIOS = sorted(p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml") if not p.parent.name.endswith("_history"))


def test_every_remediation_role_has_a_scenario():
    roles = {p.parent.parent.name for p in (ROOT / "roles").glob("*/meta/main.yml")}
    assert set(SCENARIOS) == roles - {"offload_diagnose", "offload_manual_offload", "offload_verify"}
    assert (ROOT / "molecule" / "offload_watermark_repair_history" / "molecule.yml").exists()


# The Scenario 5 role waits out real task timeouts (sleeping, not computing): on the twin, beside the rest.
ON_A_TWIN = {"offload_timeout"}


@pytest.mark.parametrize("scenario", [pytest.param(s, marks=pytest.mark.on_a_twin) if s in ON_A_TWIN else s
                                      for s in SCENARIOS])
def test_molecule_scenario(lab, scenario):
    run_molecule(scenario)
