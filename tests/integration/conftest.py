"""Fixtures for tests against the running lab (`make lab-up`); no mocks. One lab is shared by all tests."""
from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import faults
import lab_clients
import labctl
import pytest
import stack
import truth_oracle
from config import LabConfig

TABLE = "bronze_trades_binance"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ansible_run import BackgroundPlaybook, run_playbook  # noqa: E402


def diagnose(*extra: str) -> dict:
    """Run playbooks/diagnose.yml against the lab and return its JSON report."""
    with tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "report.json"
        rc, out, stderr = run_playbook("playbooks/diagnose.yml", "-e", f"report_path={report_path}", *extra)
        assert rc == 0, f"diagnose.yml failed: {stderr[-1500:]} {str(out)[-1500:]}"
        return json.loads(report_path.read_text())


INCIDENT_RECORD_KEYS = {"incident_id", "host", "run", "outcome", "alert", "times", "mttr", "diagnosis", "tables",
                        "plan", "timeline", "verification", "data_loss", "new_failure_mode"}


_LAST_DIAGNOSIS: list[dict] = []


def last_diagnosis() -> dict | None:
    """The diagnosis report (with its facts) the last remediate() call acted on, None if it made none."""
    return _LAST_DIAGNOSIS[0] if _LAST_DIAGNOSIS else None


def remediate(*extra: str, env: dict | None = None) -> tuple[int, dict | None, str, dict]:
    """Run playbooks/remediate.yml against the lab: (returncode, its JSON report or None, all output as text,
    the play recap per host). Every run that wrote its report appended one complete incident record (with its
    Markdown report) - asserted here, so every end-to-end test checks it."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = Path(tmp)
        incidents = paths / "incidents.jsonl"
        rc, out, stderr = run_playbook("playbooks/remediate.yml", "-e", f"report_path={paths / 'diagnosis.json'}",
                                       "-e", f"remediation_report_path={paths / 'remediation.json'}",
                                       "-e", f"remediate_incident_log={incidents}", *extra, timeout=900, env=env)
        report_file = paths / "remediation.json"
        report = json.loads(report_file.read_text()) if report_file.exists() else None
        diagnosis_file = paths / "diagnosis.json"
        _LAST_DIAGNOSIS[:] = [json.loads(diagnosis_file.read_text())] if diagnosis_file.exists() else []
        if report is not None and not report["check_mode"]:
            records = [json.loads(line) for line in incidents.read_text().splitlines()]
            assert len(records) == 1, records
            assert INCIDENT_RECORD_KEYS <= set(records[0]), sorted(INCIDENT_RECORD_KEYS - set(records[0]))
            assert records[0]["outcome"]["status"] == report["status"], (records[0]["outcome"], report["status"])
            assert records[0]["run"]["run_id"] == report["run_id"], records[0]["run"]
            assert list(paths.glob("*.md")), "the incident's Markdown report is rendered next to the log"
        return rc, report, json.dumps(out) + stderr, out.get("stats", {})


# What a crashed module or plugin leaves in ansible-playbook's output. A bare "Traceback" is not one: the stack's
# own log lines, quoted as evidence, may carry its tracebacks.
CRASH_MARKERS = ("MODULE FAILURE", "module_stderr", "An exception occurred during task execution")


def assert_no_crash(text: str) -> None:
    for marker in CRASH_MARKERS:
        assert marker not in text, text[max(0, text.find(marker) - 1500):text.find(marker) + 1500]


class RemediateRun:
    """remediate.yml started in the background with its own report paths (several may run at once)."""

    def __init__(self, workdir: Path, name: str, *extra: str) -> None:
        self.report_path = workdir / f"{name}-remediation.json"
        self.run = BackgroundPlaybook("playbooks/remediate.yml", "-e", f"report_path={workdir / name}-diagnosis.json",
                                      "-e", f"remediation_report_path={self.report_path}", *extra, workdir=workdir,
                                      name=name)

    def result(self, timeout: float = 900) -> tuple[int, dict | None, str, dict]:
        """Like remediate(): (returncode, report or None, all output, play recap per host)."""
        rc, out, stderr = self.run.result(timeout)
        report = json.loads(self.report_path.read_text()) if self.report_path.exists() else None
        return rc, report, json.dumps(out) + stderr, out.get("stats", {})


class SilentServer:
    """A listening socket that accepts connections and never answers: a component that hangs."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.listen(64)
        self.held = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


class HungDockerAPI(SilentServer):
    """A Docker API on a unix socket that hangs."""

    def __init__(self, path) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(path))
        super().__init__(sock)


class SilentHTTPServer(SilentServer):
    """An HTTP server on 127.0.0.1 (a free port) that hangs."""

    def __init__(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        super().__init__(sock)


class Lab:
    def __init__(self) -> None:
        self.cfg = LabConfig()
        self.dc = stack.client()
        self.prefect = lab_clients.Prefect(self.cfg)

    def container(self, service: str):
        """The lab's container of `service` (a twin's, on a twin standing in for the lab), as the engine has it now."""
        return self.dc.containers.get(self.cfg.container(service))

    def cycle(self, tables=(TABLE,), timeout: float = 240) -> dict:
        return self.prefect.wait(self.prefect.trigger(list(tables)), timeout)

    def wm(self, table: str = TABLE) -> dict | None:
        with lab_clients.pg(self.cfg) as conn, conn.cursor() as cur:
            cur.execute("SELECT * FROM offload_watermarks WHERE table_name = %s", (table,))
            row = cur.fetchone()
            return dict(zip([d[0] for d in cur.description], row)) if row else None

    def errors(self, table: str = TABLE, error_type: str = "process_error") -> float:
        text = lab_clients.metric_text(self.cfg)
        m = re.search(rf'^offload_errors_total\{{(?=[^}}]*table="{table}")(?=[^}}]*error_type="{error_type}")[^}}]*\}} '
                      r"([0-9.e+]+)$", text, re.M)
        return float(m.group(1)) if m else 0.0

    def truth(self, table: str = TABLE) -> dict:
        """The truth check as the product computes it (module_utils/offload_truth.py)."""
        return labctl.truth(self.cfg, table)

    def history_row_counts(self) -> dict:
        """History layout: watermark rows per table."""
        with lab_clients.pg(self.cfg) as conn, conn.cursor() as cur:
            cur.execute("SELECT table_name, count(*) FROM offload_watermarks GROUP BY table_name")
            return dict(cur.fetchall())

    def history_newest_ids(self) -> dict:
        """History layout: the id of each table's newest row (its watermark)."""
        with lab_clients.pg(self.cfg) as conn, conn.cursor() as cur:
            cur.execute("SELECT DISTINCT ON (table_name) table_name, id FROM offload_watermarks "
                        "ORDER BY table_name, created_at DESC, id DESC")
            return dict(cur.fetchall())

    def oracle(self, table: str = TABLE) -> dict:
        """The same question answered by code that shares nothing with the product's (tests/truth_oracle.py)."""
        return truth_oracle.table_truth(self, table)

    def assert_no_row_lost_or_doubled(self, table: str = TABLE) -> dict:
        """Both the product's truth check and the independent oracle: no row missing, none doubled. Returns the
        product's truth check."""
        truth, oracle = self.truth(table), self.oracle(table)
        assert truth["missing"] == 0 and truth["duplicated"] == 0, truth
        assert oracle["missing"] == 0 and oracle["duplicated"] == 0, oracle
        assert oracle["hot"] == truth["hot_rows"] and oracle["cold"] == truth["cold_rows"], (oracle, truth)
        return truth

    def fault(self, name: str, table: str = TABLE):
        return faults.inject(self.dc, self.cfg, name, table)

    def fault_during_remediation(self, name: str, step: str, running_run: bool = False):
        return faults.inject_during_remediation(self.dc, self.cfg, name, step, running_run)

    def clear(self) -> list[str]:
        actions = faults.clear(self.dc, self.cfg, lambda t: labctl.reset_table(self.cfg, t))
        stack.wait_for("worker online", self.prefect.worker_online, timeout=90)
        return actions

    def alertmanager(self, method: str, path: str, body: dict | None = None):
        """The lab's Alertmanager API v2 (`path` after /api/v2/), its JSON answer."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.cfg.port_alertmanager}/api/v2/{path}", method=method,
                                         data=json.dumps(body).encode() if body is not None else None,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            text = resp.read()
        return json.loads(text) if text else None

    def active_alerts(self, name: str) -> list[dict]:
        return self.alertmanager("GET", "alerts?active=true&filter=" + urllib.parse.quote(f'alertname="{name}"'))

    def escalations(self, run_id: str) -> list[dict]:
        """The escalation alerts a remediation run posted to the lab's Alertmanager."""
        return [a for a in self.active_alerts("IcebergOffloadRemediationEscalated")
                if a["annotations"].get("run_id") == run_id]

    def wait(self, what, probe, timeout=60.0):
        return stack.wait_for(what, probe, timeout=timeout)


@pytest.fixture(scope="session")
def lab() -> Lab:
    the_lab = Lab()
    if labctl.status(the_lab.cfg, None) != 0:
        pytest.fail("the lab is not healthy: run `make lab-up` (make test does it) and `make lab-status`")
    the_lab.clear()
    return the_lab


@pytest.fixture
def clean_lab(lab):
    """Each fault test starts and ends on a cleared lab."""
    yield lab
    lab.clear()
    time.sleep(0.5)


# The schedule during a live-schedule test: every 120 s, harsher than the lab's scaled 270 s (K2's 900 s on its ~94 s
# cycle, on the lab's ~28 s one) so that most remediations see a tick, and still far above one cycle, so that the
# schedule's own runs never overlap each other (K2 has no mutual exclusion: two runs of a table double its rows).
LIVE_SCHEDULE_SECONDS = 120


class LiveSchedule:
    """The offload deployment's schedule live for one test, as K2's always is."""

    def __init__(self, lab: Lab) -> None:
        self.lab, self.since = lab, None

    def start(self, first_in: float = 45) -> None:
        """Live from now, its first run `first_in` s later: by then the remediation has diagnosed (a run completing
        before the diagnosis would hide the symptom the test injected) and holds the schedule in most scenarios."""
        self.since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
        self.lab.prefect.set_schedule(LIVE_SCHEDULE_SECONDS, first_in=first_in)

    def still_live(self) -> bool:
        return not self.lab.prefect.deployment().get("paused")

    def scheduled_runs(self) -> list[dict]:
        """The runs the schedule created that have not started (Prefect deletes them when it pauses)."""
        return [r for r in self.lab.prefect.runs_in_state("SCHEDULED") if r.get("auto_scheduled")]

    def stop(self) -> None:
        """Pause it (its scheduled runs are deleted) and wait for the runs in flight: the next test starts idle."""
        self.lab.prefect.set_schedule(0)
        self.lab.wait("no flow run in flight", lambda: not self.lab.prefect.deployment_runs_in_flight(), timeout=300)

    def assert_no_runs_overlapped(self) -> list[dict]:
        """The safety promise under a live schedule: no two runs of the deployment were ever in flight together."""
        runs = [r for r in self.lab.prefect.runs_since(self.since) if r.get("start_time")]
        for earlier, later in zip(runs, runs[1:]):
            assert earlier.get("end_time") and earlier["end_time"] <= later["start_time"], (
                f"flow runs overlapped: {earlier['name']} ({earlier['start_time']} - {earlier.get('end_time')}) and "
                f"{later['name']} (from {later['start_time']})")
        return runs


@pytest.fixture
def live_schedule(clean_lab):
    live = LiveSchedule(clean_lab)
    yield live
    live.stop()


# A K2 checkout for the conformance lane (docs/fidelity.md): $K2_SOURCE, else the one beside this repository. Taken
# out of the environment: every other test runs on the twin, whose LabConfig must not read it.
K2_CHECKOUT = Path(os.environ.pop("K2_SOURCE", "") or stack.PROJECT_ROOT.parent / "shared/upstream/k2-market-data-platform")


def _relaunch(env: dict) -> None:
    """The main lab down and up again with env (another lane or layout)."""
    for cmd in (["down"], ["up"]):
        proc = subprocess.run([sys.executable, str(stack.PROJECT_ROOT / "lab" / "labctl.py"), *cmd],
                              capture_output=True, text=True, env=env, timeout=900)
        assert proc.returncode == 0, f"labctl {cmd[0]}: {(proc.stdout + proc.stderr)[-1500:]}"


@pytest.fixture(scope="session")
def history_lab():
    """The lab rebuilt in the runbook's history layout, once for every test that needs it (they run last, see
    pytest_collection_modifyitems); the default state layout is restored at the end of the session."""
    _relaunch({**os.environ, "K2_LAB_WATERMARK_LAYOUT": "history"})
    os.environ["K2_LAB_WATERMARK_LAYOUT"] = "history"
    try:
        yield Lab()
    finally:
        os.environ.pop("K2_LAB_WATERMARK_LAYOUT", None)
        _relaunch({**os.environ, "K2_LAB_WATERMARK_LAYOUT": "state"})


@pytest.fixture(scope="session")
def k2_lab():
    """The main lab rebuilt in the conformance lane - K2's own job, watermark code and DDLs from K2_CHECKOUT - once
    for every test that needs it (they run last, see pytest_collection_modifyitems); the twin is restored after.
    Skipped, with its reason, when no K2 checkout is there."""
    if not (K2_CHECKOUT / "docker/offload/offload_generic.py").is_file():
        pytest.skip(f"no K2 checkout at {K2_CHECKOUT} (set K2_SOURCE): the conformance lane needs K2's own code")
    subprocess.run([str(stack.PROJECT_ROOT / "scripts/spark35.sh")], check=True, timeout=900)
    env = {k: v for k, v in os.environ.items() if not k.startswith("K2_LAB_")}
    _relaunch({**env, "K2_SOURCE": str(K2_CHECKOUT)})
    os.environ["K2_SOURCE"] = str(K2_CHECKOUT)
    try:
        the_lab = Lab()
        the_lab.clear()
        yield the_lab
    finally:
        os.environ.pop("K2_SOURCE", None)
        _relaunch(env)


def _file_order() -> str:
    order = os.environ.get("K2_TEST_FILE_ORDER", "")
    if order not in ("", "reverse") and not re.fullmatch(r"random:\w+", order):
        raise pytest.UsageError(f"K2_TEST_FILE_ORDER must be reverse or random:<seed>, got {order!r}")
    return order


def pytest_report_header():
    return f"integration file order: {_file_order() or 'as collected'} (K2_TEST_FILE_ORDER)"


def pytest_collection_modifyitems(items):
    """Files run as collected, or reversed / shuffled (K2_TEST_FILE_ORDER=reverse | random:<seed>: no file may depend
    on the files run before it); each file keeps its own order. Tests on the history layout run last, together, and the
    conformance lane's after them."""
    order = _file_order()
    files = list(dict.fromkeys(item.path for item in items))
    if order == "reverse":
        files.reverse()
    elif order:
        random.Random(order.partition(":")[2]).shuffle(files)
    rank = {path: i for i, path in enumerate(files)}
    items.sort(key=lambda item: ("history_lab" in getattr(item, "fixturenames", ()),
                                 "k2_lab" in getattr(item, "fixturenames", ()), rank[item.path]))
