"""Many K2 stacks (docs/many-stacks.md): one run of remediate.yml over two Docker hosts at once (forks), the lab and
its twin b (lab/twin.py: a second K2 stack on this engine, its own names, ports, network, state and lock). A fault
on the twin is remediated on the twin only; reports, set_stats and locks are per host. The twin is started for this
module with `labctl up` and taken down at its end with its own `labctl down`, which leaves the lab alone.

This test remediates the lab too. On a lab somebody else is testing on, that interferes (their remediations find the
lock held; their faults injected at a remediation step fire on this one's): K2_TWO_STACKS_INSTEAD_OF_LAB=c puts twin
c in the lab's place."""
from __future__ import annotations

import json
import os
import time

import faults
import lab_clients
import pytest
import stack
import twin
from ansible_run import BackgroundPlaybook
from config import LabConfig
from conftest import INCIDENT_RECORD_KEYS, TABLE, Lab, assert_no_crash

NAME = "b"
INSTEAD_OF_LAB = os.environ.get("K2_TWO_STACKS_INSTEAD_OF_LAB", "")
TWIN_HOST = twin.host(NAME)
FIRST_HOST = twin.host(INSTEAD_OF_LAB) if INSTEAD_OF_LAB else twin.MAIN_HOST
TWINS = [name for name in (INSTEAD_OF_LAB, NAME) if name]


class Twin(Lab):
    """The integration tests' Lab, on the twin: faults, cycles and truth checks through the twin's config."""

    def __init__(self, cfg: LabConfig) -> None:  # Lab() takes the main lab's config from the environment
        self.cfg, self.dc, self.prefect = cfg, stack.client(), lab_clients.Prefect(cfg)


def _ids(dc, cfg: LabConfig) -> dict[str, str]:
    return {c.name: c.id for c in stack.lab_containers(dc, cfg)}


@pytest.fixture(scope="module")
def twins():
    """The twins this module starts, by name: b, and c in the lab's place if asked."""
    main, names = LabConfig(), TWINS
    dc = stack.client()
    main_before = _ids(dc, main)
    try:
        started = {}
        for name in names:
            up = twin.labctl(name, "up", capture_output=True, text=True, timeout=900)
            assert up.returncode == 0, up.stdout + up.stderr
            started[name] = Twin(twin.config(name))
            # A baseline as the lab has one: every table offloaded once, so that the twin diagnoses healthy.
            assert started[name].cycle(tables=(), timeout=300)["state_type"] == "COMPLETED"
        yield started
    finally:
        downs = [twin.labctl(name, "down", capture_output=True, text=True, timeout=300) for name in names]
    assert all(down.returncode == 0 for down in downs), [down.stdout + down.stderr for down in downs]
    assert all(_ids(dc, twin.config(name)) == {} for name in names)
    assert _ids(dc, main) == main_before, "the twins' up and down must not re-create or remove the lab's containers"


@pytest.fixture(scope="module")
def twin_b(twins) -> Twin:
    return twins[NAME]


@pytest.fixture(scope="module")
def first(twins) -> Lab:
    """The stack beside the twin: the lab, or twin c in its place."""
    return twins[INSTEAD_OF_LAB] if INSTEAD_OF_LAB else Lab()


def _busy(cfg: LabConfig) -> str:
    """Why a stack is not idle ('' when it is): this test remediates the first stack too and must find nothing to do
    there, so it waits for anyone else's fault (the lab's registry) or remediation (its lock) to end."""
    registry = cfg.state_dir / "faults.json"
    active = json.loads(registry.read_text()) if registry.exists() else {}
    if active:
        return f"faults {', '.join(active)} active (`make lab-clear` if nobody uses them)"
    return f"a remediation holds {_lock(cfg)}" if _lock(cfg).exists() else ""


def _lock(cfg: LabConfig):
    return cfg.state_dir / "locks" / "remediation.lock"  # the inventories' k2_remediation_lock_path


def test_the_twin_is_a_stack_of_its_own(twin_b):
    dc, main = twin_b.dc, LabConfig()
    twin_containers = stack.lab_containers(dc, twin_b.cfg)
    assert sorted(c.name for c in twin_containers) == sorted(s["name"] for s in stack.service_specs(twin_b.cfg))
    assert all(c.name.startswith("k2b-") and c.status == "running" for c in twin_containers), twin_containers
    assert not set(_ids(dc, main)) & {c.name for c in twin_containers}, "the lab's label must not list the twin's"
    assert {c.name for c in dc.networks.get("k2b-network").containers} >= {"k2b-clickhouse", "k2b-spark-iceberg"}
    assert {v.name for v in dc.volumes.list(filters=stack.label_filter(twin_b.cfg))} == {"k2b-lab-pgdata",
                                                                                         "k2b-lab-chdata"}
    # The lab's containers are still the ones its (unchanged) specs describe: the prefix re-created nothing.
    running = {c.name: c for c in stack.lab_containers(dc, main)}
    assert {s["name"]: stack.spec_digest(s) for s in stack.service_specs(main)} == {
        name: c.labels.get(stack.SPEC_LABEL) for name, c in running.items()}


def test_a_fault_on_the_twin_is_remediated_on_the_twin_only(twin_b, first, tmp_path, monkeypatch):
    stack.wait_for(f"{FIRST_HOST} idle ({_busy(first.cfg)})", lambda: not _busy(first.cfg), timeout=600)
    twin_b.fault("worker-stopped")
    inventory = twin.write_inventory(tmp_path / "inventory", TWINS, with_main=not INSTEAD_OF_LAB)
    reports = tmp_path / "reports"
    reports.mkdir(mode=0o700)  # as the play wants it: else the first host to fix it counts a change, a race
    # The free strategy (docs/many-stacks.md): each host goes through the play at its own pace, so a healthy stack's
    # lock is released when its own run ends; linear, Ansible's default, would hold it until the twin's ends.
    monkeypatch.setenv("ANSIBLE_STRATEGY", "free")
    run = BackgroundPlaybook(
        "playbooks/remediate.yml", "-i", str(inventory), "--forks", "2",
        "-e", f"report_path={reports}/diagnose-{{{{ inventory_hostname }}}}.json",
        "-e", f"remediation_report_path={reports}/remediate-{{{{ inventory_hostname }}}}.json",
        "-e", f"remediate_incident_log={reports}/incidents.jsonl",  # one log for every host, as by default
        workdir=tmp_path, name="remediate")
    first_free_while_twin_verifies = False
    while run.proc.poll() is None and not first_free_while_twin_verifies:
        first_free_while_twin_verifies = ("verification" in faults.remediation_step(twin_b.cfg)
                                          and not _lock(first.cfg).exists())
        time.sleep(0.2)
    rc, out, stderr = run.result(timeout=900)
    output = json.dumps(out) + stderr
    assert_no_crash(output)
    assert rc == 0, output[-3000:]

    stats = out["stats"]
    assert stats[FIRST_HOST]["changed"] == 0 and stats[FIRST_HOST]["failures"] == 0, stats
    assert stats[TWIN_HOST]["changed"] > 0 and stats[TWIN_HOST]["failures"] == 0, stats
    report = {h: json.loads((reports / f"remediate-{h}.json").read_text()) for h in (FIRST_HOST, TWIN_HOST)}
    diagnosis = {h: json.loads((reports / f"diagnose-{h}.json").read_text()) for h in (FIRST_HOST, TWIN_HOST)}
    assert {h: (report[h]["host"], diagnosis[h]["host"]) for h in report} == {h: (h, h) for h in report}

    first_report, twin_report = report[FIRST_HOST], report[TWIN_HOST]
    assert first_report["status"] == "healthy" and first_report["outcomes"] == [], first_report
    assert twin_report["status"] == "recovered" and twin_report["remediated_scenarios"] == [1], twin_report
    actions = [a for o in twin_report["outcomes"] for a in o["actions"]]
    assert any(a.startswith("start k2b-prefect-worker") for a in actions), actions
    assert not any("k2-prefect-worker" in a for a in actions), actions
    assert twin_report["verification"]["flow_run"]["state_type"] == "COMPLETED", twin_report["verification"]

    published = out["global_custom_stats"]["k2_offload_remediation"]
    assert {h: published[h]["status"] for h in published} == {FIRST_HOST: "healthy", TWIN_HOST: "recovered"}
    incidents = [json.loads(line) for line in (reports / "incidents.jsonl").read_text().splitlines()]
    assert {r["host"]: r["outcome"]["status"] for r in incidents} == {FIRST_HOST: "healthy", TWIN_HOST: "recovered"}
    assert len(incidents) == 2 and all(INCIDENT_RECORD_KEYS <= set(r) for r in incidents), incidents

    # One lock per stack, each on its own Docker host path, both taken and released by this run; the healthy
    # stack's was free again while the twin was still being verified.
    assert first_report["lock"]["outcome"] == twin_report["lock"]["outcome"] == "acquired"
    assert first_report["lock"]["holder"]["token"] != twin_report["lock"]["holder"]["token"]
    assert _lock(twin_b.cfg).with_name("remediation.lock.guard").exists() and not _lock(twin_b.cfg).exists()
    assert first_free_while_twin_verifies, "the healthy stack's lock was held while the twin was remediated"

    assert twin_b.dc.containers.get("k2b-prefect-worker").status == "running"
    assert twin_b.wm(TABLE)["status"] == "success" and twin_b.wm(TABLE)["failure_count"] == 0
    for table in twin_report["tables"]:
        truth = twin_b.truth(table)  # independent of the playbook's own truth check
        assert truth["missing"] == 0 and truth["duplicated"] == 0, truth
