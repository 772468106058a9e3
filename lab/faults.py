"""Fault injection for the lab: each fault reproduces one failure of the runbook through the real stack.

Every fault is recorded in <state>/faults.json so that `clear` knows what to undo; `clear` also
repairs anything it finds broken, so it is safe to run at any time.
"""
from __future__ import annotations

import io
import json
import os
import re
import tarfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lab_clients
from config import LabConfig
from docker.errors import NotFound
from stack import LAB, LabError, label_filter, render_flows, service_specs, wait_for

DEFAULT_TABLE = "bronze_trades_binance"
JOB_OOM_MARKER = "/run/lab-pressure/job-oom"
JDBC_SOURCE = LAB / "images/spark-iceberg/clickhouse-jdbc-0.4.6-all.jar"

PG_VERSION_HIDDEN = "PG_VERSION.lab-fault"


@dataclass(frozen=True)
class Fault:
    name: str
    scenario: int  # the runbook scenario; 0 for a root cause upstream of them (root_cause names it)
    summary: str
    inject: Callable
    data_fault: bool = False  # touches watermarks or cold data: clear rebuilds the table's cold copy
    root_cause: str | None = None  # orchestration / monitoring component the diagnosis must name first

    @property
    def label(self) -> str:
        return f"root cause {self.root_cause}" if self.root_cause else f"runbook scenario {self.scenario}"

    def describe(self, cfg: LabConfig) -> str:
        """The summary with this lab's container names (it is written with K2's)."""
        return re.sub(r"\bk2-(?=[a-z])", cfg.prefix, self.summary)


def _post(cfg: LabConfig, path: str) -> None:
    req = urllib.request.Request(f"http://127.0.0.1:{cfg.port_clickhouse}{path}", data=b"", method="POST")
    try:
        urllib.request.urlopen(req, timeout=10).read()  # noqa: S310 - 127.0.0.1 only
    except (ConnectionError, OSError):
        pass  # /lab/crash never answers


def _sql(cfg: LabConfig, statement: str, params: tuple) -> int:
    with lab_clients.pg(cfg) as conn, conn.cursor() as cur:
        cur.execute(statement, params)
        return cur.rowcount


def _require_layout(cfg: LabConfig, layout: str) -> None:
    if cfg.watermark_layout != layout:
        raise LabError(f"this fault needs the {layout} watermark layout: lab-down, then "
                       f"K2_LAB_WATERMARK_LAYOUT={layout} make lab-up")


def kill(service: str):
    """By service (lab/config.py LabConfig.container): the container's name is this lab's, known at injection time."""
    def inject(dc, cfg, table):
        dc.containers.get(cfg.container(service)).kill()
    return inject


def worker_oom(dc, cfg, table):
    worker = cfg.container("prefect-worker")
    dc.containers.get(worker).kill(signal="SIGUSR1")
    wait_for("worker OOM kill", lambda: dc.containers.get(worker).status == "exited", timeout=60)


def clickhouse_memory(dc, cfg, table):
    stats = dc.containers.get(cfg.container("clickhouse")).stats(stream=False)["memory_stats"]
    # Without the page cache, as `docker stats` counts it: right after a start the cache is large, and a
    # ballast sized against it would leave ClickHouse far below its own memory limit.
    cache = stats.get("stats", {}).get("inactive_file", stats.get("stats", {}).get("cache", 0))
    limit, usage = stats["limit"], stats["usage"] - cache
    _post(cfg, f"/lab/ballast?mb={max(1, int((limit * 0.93 - usage) / 2**20))}")


def clickhouse_crashed(dc, cfg, table):
    _post(cfg, "/lab/crash")
    wait_for("ClickHouse crash", lambda: dc.containers.get(cfg.container("clickhouse")).status == "exited", timeout=30)


def disconnect(dc, cfg, table):
    dc.networks.get(cfg.network).disconnect(cfg.container("clickhouse"))


def fault_file(name: str, content: str = "1"):
    def inject(dc, cfg, table):
        cfg.faults_dir.mkdir(parents=True, exist_ok=True)
        (cfg.faults_dir / name).write_text(content if content != "timeout" else str(cfg.task_timeout_seconds + 20))
    return inject


def job_oom(dc, cfg, table):
    # In the Spark container's tmpfs: the pressure persists across jobs and a container restart relieves it.
    dc.containers.get(cfg.container("spark-iceberg")).exec_run(["touch", JOB_OOM_MARKER])


def jdbc_missing(dc, cfg, table):
    dc.containers.get(cfg.container("spark-iceberg")).exec_run(["rm", "-f", cfg.jdbc_jar])


def warehouse_permissions(dc, cfg, table):
    cfg.warehouse_dir.chmod(0o555)
    os.chown(cfg.warehouse_dir, 65534, 65534)


def stop(service: str):
    def inject(dc, cfg, table):
        dc.containers.get(cfg.container(service)).stop(timeout=10)
    return inject


def _pgdata(dc, cfg: LabConfig) -> Path:
    return Path(dc.volumes.get(cfg.volume("pgdata")).attrs["Mountpoint"])


def prefect_db_unsafe(dc, cfg, table):
    """PostgreSQL's data directory no longer looks like a cluster (PG_VERSION gone): the next start fails with a
    data-directory error, which remediation must escalate instead of starting it again and again."""
    db = dc.containers.get(cfg.container("prefect-db"))
    db.stop(timeout=10)
    (_pgdata(dc, cfg) / "PG_VERSION").rename(_pgdata(dc, cfg) / PG_VERSION_HIDDEN)
    db.start()
    wait_for(f"{db.name} to exit on its data directory", lambda: dc.containers.get(db.name).status == "exited",
             timeout=60)


def wm_stuck_running(dc, cfg, table):
    _require_layout(cfg, "state")
    _sql(cfg, "UPDATE offload_watermarks SET status = 'running', updated_at = NOW() - INTERVAL '45 minutes' "
              "WHERE table_name = %s", (table,))


def wm_missing(dc, cfg, table):
    _sql(cfg, "DELETE FROM offload_watermarks WHERE table_name = %s", (table,))


def _shift(interval: str):
    def inject(dc, cfg, table):
        if cfg.watermark_layout == "state":
            _sql(cfg, "UPDATE offload_watermarks SET last_offload_timestamp = last_offload_timestamp + %s::interval "
                      "WHERE table_name = %s", (interval, table))
        else:
            _sql(cfg, "INSERT INTO offload_watermarks (table_name, max_timestamp, sequence_number) "
                      "SELECT table_name, max_timestamp + %s::interval, sequence_number FROM offload_watermarks "
                      "WHERE table_name = %s ORDER BY created_at DESC, id DESC LIMIT 1", (interval, table))
    return inject


def wm_history_bloat(dc, cfg, table):
    _require_layout(cfg, "history")
    _sql(cfg, "INSERT INTO offload_watermarks (table_name, max_timestamp, sequence_number, created_at) "
              "SELECT %s, w.max_timestamp - g * INTERVAL '1 minute', w.sequence_number, NOW() - g * INTERVAL '15 minutes' "
              "FROM generate_series(1, 150) g, (SELECT max_timestamp, sequence_number FROM offload_watermarks "
              "WHERE table_name = %s ORDER BY created_at DESC, id DESC LIMIT 1) w", (table, table))


def volume_spike(dc, cfg, table):
    # K2's job cost grows with the rows; the lab's Spark is fast, so the fault also bounds its throughput.
    fault_file("job-throughput", "6000")(dc, cfg, table)
    with lab_clients.pg(cfg) as conn, conn.cursor() as cur:
        column = "last_offload_timestamp" if cfg.watermark_layout == "state" else "max_timestamp"
        cur.execute(f"SELECT max({column}) FROM offload_watermarks WHERE table_name = %s", (table,))  # noqa: S608
        watermark = cur.fetchone()[0]
    after = ["--after", watermark.isoformat()] if watermark else []
    result = dc.containers.get(cfg.container("feed")).exec_run(
        ["python3", "/lab/services/feed/generator.py", "spike", "--table", table, "--factor", "10", *after])
    if result.exit_code != 0:
        output = result.output.decode(errors="replace").strip() or f"exit code {result.exit_code}"
        raise LabError(f"volume spike failed: {output.splitlines()[-1]}")


FAULTS = {f.name: f for f in (
    Fault("worker-stopped", 1, "k2-prefect-worker stopped: scheduled runs pile up, nothing offloads",
          stop("prefect-worker")),
    Fault("worker-oom", 1, "k2-prefect-worker OOM-killed (exit 137, OOMKilled=true)", worker_oom),
    Fault("worker-killed", 1, "k2-prefect-worker killed (SIGKILL): its flow run stays RUNNING for ever, its job goes on",
          kill("prefect-worker")),
    Fault("prefect-db-stopped", 0, "k2-prefect-db stopped: Prefect's database and the watermarks are gone",
          stop("prefect-db"), root_cause="prefect_db"),
    Fault("prefect-db-unsafe", 0, "k2-prefect-db exits at start on a data-directory error (starting it is unsafe)",
          prefect_db_unsafe, root_cause="prefect_db"),
    Fault("prefect-server-stopped", 0, "k2-prefect-server stopped: no API, no scheduling, workers cannot poll",
          stop("prefect-server"), root_cause="prefect_server"),
    Fault("prometheus-stopped", 0, "k2-prometheus stopped: the alert cannot fire (alerting blind)",
          stop("prometheus"), root_cause="monitoring"),
    Fault("clickhouse-stopped", 2, "k2-clickhouse stopped: offload fails reading ClickHouse", stop("clickhouse")),
    Fault("clickhouse-crashed", 2, "k2-clickhouse crashed (exit 139, fatal lines in its log)", clickhouse_crashed),
    Fault("clickhouse-memory", 2, "k2-clickhouse above 90% of its memory limit: queries fail with code 241",
          clickhouse_memory),
    Fault("clickhouse-disconnected", 2, "k2-clickhouse disconnected from the lab network", disconnect),
    Fault("spark-stopped", 3, "k2-spark-iceberg stopped: docker exec fails", stop("spark-iceberg")),
    Fault("job-oom", 3, "the offload job is OOM-killed inside k2-spark-iceberg (exit 137)", job_oom),
    Fault("jdbc-missing", 3, "the JDBC driver file is missing from /opt/spark/jars", jdbc_missing),
    Fault("warehouse-permissions", 3, "the Iceberg warehouse is not writable (owner nobody, r-x)",
          warehouse_permissions),
    Fault("watermark-stuck-running", 4, "watermark row stuck in 'running' for 45 min", wm_stuck_running, True),
    Fault("watermark-missing", 4, "watermark row deleted: job fails 'Watermark not found'", wm_missing, True),
    Fault("watermark-ahead", 4, "watermark moved 30 min ahead of the cold tier (a gap)", _shift("30 minutes"), True),
    Fault("watermark-behind", 4, "watermark moved 30 min behind the cold tier (duplicates)", _shift("-30 minutes"),
          True),
    Fault("watermark-history-bloat", 4, "history layout: 150 extra watermark rows for the table", wm_history_bloat,
          True),
    Fault("volume-spike", 5, "10x the normal hourly rows in the last hour: the offload exceeds its timeout",
          volume_spike, True),
    Fault("job-slow", 5, "the offload job stalls past the task timeout (and keeps running in the container)",
          fault_file("job-slow", "timeout"), True),
)}


def _registry(cfg: LabConfig) -> dict:
    path = cfg.state_dir / "faults.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _save_registry(cfg: LabConfig, reg: dict) -> None:
    (cfg.state_dir / "faults.json").write_text(json.dumps(reg, indent=2))


def inject(dc, cfg: LabConfig, name: str, table: str = DEFAULT_TABLE) -> Fault:
    if name not in FAULTS:
        raise LabError(f"unknown fault {name!r}; choose one of: {', '.join(FAULTS)}")
    fault = FAULTS[name]
    fault.inject(dc, cfg, table)
    reg = _registry(cfg)
    reg[name] = {"table": table, "at": time.time()}
    _save_registry(cfg, reg)
    return fault


def remediation_step(cfg: LabConfig) -> str:
    """The step a running remediation is at, as its holder records it in the stack's lock (the lab's lock path)."""
    try:
        return json.loads((cfg.state_dir / "locks" / "remediation.lock").read_text()).get("step") or ""
    except (OSError, ValueError):
        return ""


def inject_during_remediation(dc, cfg: LabConfig, name: str, step: str, running_run: bool = False,
                              table: str = DEFAULT_TABLE, timeout: float = 600) -> Fault:
    """Mid-remediation injection: wait until a remediation holds the lock at a step containing `step` (and, with
    running_run, until a flow run is RUNNING), then inject the fault."""
    wait_for(f"a remediation at step '{step}'", lambda: step in remediation_step(cfg), timeout=timeout)
    if running_run:
        prefect = lab_clients.Prefect(cfg)
        wait_for("a flow run RUNNING", lambda: any(r["state"]["type"] == "RUNNING" for r in prefect.running_runs()),
                 timeout=timeout)
    return inject(dc, cfg, name, table)


def orphan_offload_pids(dc, cfg: LabConfig | None = None) -> list[int]:
    """PIDs (container namespace) of offload_generic.py processes running in the Spark container (the main lab's by
    default)."""
    try:
        ctr = dc.containers.get((cfg or LabConfig()).container("spark-iceberg"))
    except NotFound:
        return []
    if ctr.status != "running":
        return []
    out = ctr.exec_run(["ps", "-eo", "pid=,args="]).output.decode()
    return [int(line.split()[0]) for line in out.splitlines() if "offload_generic.py" in line and "ps -eo" not in line]


def clear(dc, cfg: LabConfig, reset_table: Callable[[str], None]) -> list[str]:
    """Undo every fault; rebuild the cold copy of tables whose data a fault touched. Returns actions."""
    actions = []
    for f in cfg.faults_dir.glob("*"):
        f.unlink()
        actions.append(f"removed fault file {f.name}")
    spark = dc.containers.get(cfg.container("spark-iceberg"))
    if cfg.warehouse_dir.stat().st_uid != 0 or (cfg.warehouse_dir.stat().st_mode & 0o777) != 0o775:
        os.chown(cfg.warehouse_dir, 0, 0)
        cfg.warehouse_dir.chmod(0o775)
        actions.append("restored warehouse owner/mode")
    hidden = _pgdata(dc, cfg) / PG_VERSION_HIDDEN
    if hidden.exists():
        hidden.rename(hidden.with_name("PG_VERSION"))
        actions.append("restored PostgreSQL's PG_VERSION")
    network = dc.networks.get(cfg.network)
    order = [spec["name"] for spec in service_specs(cfg)]  # dependencies first: the database before Prefect
    managed = dc.containers.list(all=True, filters=label_filter(cfg))
    for ctr in sorted(managed, key=lambda c: order.index(c.name) if c.name in order else len(order)):
        if ctr.status == "paused":
            ctr.unpause()
            actions.append(f"unpaused {ctr.name}")
        elif ctr.status != "running":
            ctr.start()
            actions.append(f"started {ctr.name}")
        ctr.reload()
        # Monitoring shares the host's network namespace (lab/stack.py): there is no user network for it to rejoin.
        on_host_network = ctr.attrs["HostConfig"].get("NetworkMode") == "host"
        if not on_host_network and cfg.network not in ctr.attrs["NetworkSettings"]["Networks"]:
            network.connect(ctr, aliases=[ctr.attrs["Config"]["Hostname"]])
            actions.append(f"reconnected {ctr.name} to {cfg.network}")
    spark.reload()
    if spark.exec_run(["test", "-e", JOB_OOM_MARKER]).exit_code == 0:
        spark.exec_run(["rm", "-f", JOB_OOM_MARKER])
        actions.append("relieved the Spark container's memory pressure")
    if spark.exec_run(["test", "-f", cfg.jdbc_jar]).exit_code != 0:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(str(JDBC_SOURCE), arcname=JDBC_SOURCE.name)
        spark.put_archive("/opt/spark/jars", buf.getvalue())
        actions.append("restored the JDBC driver file")
    if render_flows(cfg):  # Scenario 5 mitigation A raised the task timeout in the host's flow file
        actions.append(f"restored the flow file's task timeout ({cfg.task_timeout_seconds} s)")
    prefect = lab_clients.Prefect(cfg)
    wait_for("Prefect API", prefect.healthy, timeout=120)
    for run in prefect.running_runs():  # left RUNNING by a killed worker or an interrupted test: a zombie
        prefect.set_state(run["id"], "CRASHED", "lab clear: left over by an interrupted run")
        actions.append(f"crashed left-over flow run {run['name']}")
    for pid in orphan_offload_pids(dc, cfg):
        spark.exec_run(["kill", "-9", str(pid)])
        actions.append(f"killed orphan offload process {pid} in {spark.name}")
    lock = cfg.state_dir / "locks" / "remediation.lock"  # the inventories' k2_remediation_lock_path
    if lock.exists():  # left by an interrupted run; its holder is gone with it
        lock.unlink()
        actions.append("removed a left-over remediation lock")
    for suffix, what in ((".schedule-hold", "schedule hold"), (".escalation", "escalation record")):
        record = lock.with_name(lock.name + suffix)  # records kept beside the lock (offload_schedule, offload_lock)
        if record.exists():  # left by a test's run: the next test's alert-driven runs would stand down for 30 min
            record.unlink()
            actions.append(f"removed a left-over {what}")
    if prefect.deployment().get("paused") != (cfg.schedule_seconds <= 0):  # a test or a dead run left it otherwise
        actions.append(f"put the lab's schedule back: {prefect.set_schedule(cfg.schedule_seconds)}")
    wait_for("ClickHouse", lambda: lab_clients.url_ok(f"http://127.0.0.1:{cfg.port_clickhouse}/ping"), timeout=60)
    _post(cfg, "/lab/ballast?mb=0")
    reg = _registry(cfg)
    if "volume-spike" in reg:  # the spike was a lab event: take its rows out of the hot tier again
        lab_clients.clickhouse(cfg).command(
            f"ALTER TABLE {reg['volume-spike']['table']} DELETE WHERE kafka_partition = 9 SETTINGS mutations_sync = 2")
        actions.append("removed the spike's rows from ClickHouse")
    for name, info in reg.items():
        if FAULTS.get(name) and FAULTS[name].data_fault:
            reset_table(info["table"])
            actions.append(f"rebuilt cold copy and watermark of {info['table']} (after {name})")
    _save_registry(cfg, {})
    return actions
