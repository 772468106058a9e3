"""`make bench`: lab start-up time (cold and warm), offload cycle time, diagnosis time, time from fault to
verified recovery per remediated scenario (MTTR), the same through the alert-driven loop with no human (and the
time from the alert firing to the remediation starting), resident memory per container.

Medians over repeated runs (this machine is shared and noisy); the run count is printed with each figure.
`bench.py [section ...]` runs only the named sections (startup, cycle, diagnose, mttr, loop, watermark, memory) and
`K2_BENCH_MTTR_FAULTS=job-slow,volume-spike` only those MTTR faults (`K2_BENCH_LOOP_FAULTS` for the loop's);
`K2_BENCH_RUNS` sets the repetitions (3).
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "lab"))

import faults  # noqa: E402
import lab_clients  # noqa: E402
import stack  # noqa: E402
import yaml  # noqa: E402
from config import LabConfig  # noqa: E402

LABCTL = [sys.executable, str(ROOT / "lab" / "labctl.py")]
RUNS = int(os.environ.get("K2_BENCH_RUNS", "3"))  # medians of RUNS; the machine is shared and noisy
SECTIONS = ("startup", "cycle", "diagnose", "mttr", "loop", "watermark", "memory")
# One representative fault per remediated scenario (both for timeouts): (scenario, fault, before the fault,
# after it). A watermark fault needs offloaded data to be wrong about ("offload"); job-oom and the timeouts show
# only in a failed run's log ("failed run"), which is part of their time to recovery.
# Root causes upstream of the scenarios are measured the same way; an unsafe one is timed to its escalation.
MTTR_FAULTS = [("scenario 1", "worker-oom", None, None), ("scenario 2", "clickhouse-stopped", None, None),
               ("scenario 3", "job-oom", None, "failed run"), ("scenario 4", "watermark-ahead", "offload", None),
               ("scenario 5", "job-slow", None, "failed run"), ("scenario 5", "volume-spike", None, "failed run"),
               ("root cause", "prefect-server-stopped", None, None), ("root cause", "prefect-db-stopped", None, None),
               ("root cause", "prefect-db-unsafe", None, None)]
ESCALATING_FAULTS = {"prefect-db-unsafe": 30}  # fault -> target seconds to a precise escalation
# The closed loop (make loop-up), no human after the fault: which alert brings it, per Scenario 1-4 fault. A fault
# that fails runs needs runs: the bench plays K2's 15-minute schedule, compressed to one run every LOOP_SCHEDULE s,
# until the loop's remediation takes the stack's lock (then the schedule stops, as a paused deployment would).
LOOP_FAULTS = [("scenario 1", "worker-oom", "IcebergOffloadMetricsDown", False),
               ("scenario 2", "clickhouse-stopped", "IcebergOffloadConsecutiveFailures", True),
               ("scenario 3", "warehouse-permissions", "IcebergOffloadConsecutiveFailures", True),
               ("scenario 4", "watermark-missing", "IcebergOffloadConsecutiveFailures", True)]
LOOP_SCHEDULE = 10


def timed(args: list[str]) -> float:
    started = time.monotonic()
    subprocess.run(LABCTL + args, check=True, capture_output=True)
    return time.monotonic() - started


def timed_cmd(argv: list[str], env: dict) -> float:
    started = time.monotonic()
    subprocess.run(argv, check=True, capture_output=True, env=env, cwd=ROOT)
    return time.monotonic() - started


HISTORY_DDL = ("CREATE TABLE offload_watermarks (id BIGSERIAL PRIMARY KEY, table_name TEXT NOT NULL, "
               "max_timestamp TIMESTAMPTZ NOT NULL, sequence_number BIGINT NOT NULL, "
               "created_at TIMESTAMPTZ NOT NULL DEFAULT NOW())")
STATE_DDL = ("CREATE TABLE offload_watermarks (table_name TEXT PRIMARY KEY, last_offload_timestamp TIMESTAMPTZ NOT NULL, "
             "last_offload_max_sequence BIGINT NOT NULL, last_offload_row_count BIGINT DEFAULT 0, status TEXT NOT NULL "
             "DEFAULT 'initialized', last_successful_run TIMESTAMPTZ, last_run_duration_seconds INTEGER, "
             "failure_count INTEGER DEFAULT 0, last_error_message TEXT, created_at TIMESTAMPTZ DEFAULT NOW(), "
             "updated_at TIMESTAMPTZ DEFAULT NOW())")
TEN_TABLES = [f"bench_table_{i}" for i in range(10)]


def superuser_sql(statement: str) -> None:
    """Run one statement as the lab database's superuser (the offload's role may not create databases)."""
    subprocess.run(["docker", "exec", "k2-prefect-db", "runuser", "-u", "postgres", "--", "psql", "-q", "-U",
                    "postgres", "-c", statement], check=True, capture_output=True)


def scratch_db(cfg: LabConfig, name: str, ddl: str, fill: str, params: tuple = ()) -> None:
    """A throwaway database with its own offload_watermarks (dropped and re-created)."""
    import psycopg2
    superuser_sql(f"DROP DATABASE IF EXISTS {name}")
    superuser_sql(f"CREATE DATABASE {name} OWNER {cfg.db_user}")
    with psycopg2.connect(host="127.0.0.1", port=cfg.port_postgres, dbname=name, user=cfg.db_user,
                          password=cfg.db_password) as conn, conn.cursor() as cur:
        cur.execute(ddl)
        cur.execute(fill, params)


def module_run(env: dict, module: str, args: dict) -> tuple[float, float]:
    """(seconds, peak RSS MiB of the ansible-playbook process tree) for one module task on the lab host."""
    import json
    import tempfile
    play = [{"hosts": "k2_docker_hosts", "gather_facts": False, "tasks": [{"name": "m", module: args}]}]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        json.dump(play, f)
    try:
        started = time.monotonic()
        proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "ansible-playbook"), f.name], env=env, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)  # this run's peak RSS (it and the children it waited for)
        seconds = time.monotonic() - started
    finally:
        os.unlink(f.name)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{module} failed (exit {os.waitstatus_to_exitcode(status)})")
    return seconds, usage.ru_maxrss / 1024


def watermark_bench(cfg: LabConfig, env: dict) -> str:
    pg = {"login_host": "127.0.0.1", "login_port": cfg.port_postgres, "login_user": cfg.db_user,
          "login_password": cfg.db_password}
    lines = []
    repairs = []
    for _ in range(RUNS):  # ten tables whose watermarks are 30 min behind their cold tier
        scratch_db(cfg, "k2_bench_state", STATE_DDL,
                   "INSERT INTO offload_watermarks (table_name, last_offload_timestamp, last_offload_max_sequence, "
                   "status) SELECT t, NOW() - INTERVAL '30 minutes', 1, 'success' FROM unnest(%s) t", (TEN_TABLES,))
        cold = {t: {"max_timestamp": "2026-11-26T12:00:00+00:00", "max_sequence": 2} for t in TEN_TABLES}
        repairs.append(module_run(env, "offload_watermark", {"action": "repair", "tables": TEN_TABLES, "cold": cold,
                                                               "login_db": "k2_bench_state", **pg})[0])
    lines.append(f"repair 10 tables (one transaction, a lock per table): {statistics.median(repairs):6.1f} s   "
                 f"(median of {RUNS}, ansible-playbook included)")
    for rows in (10_000, 1_000_000):
        fill = ("INSERT INTO offload_watermarks (table_name, max_timestamp, sequence_number, created_at) "
                "SELECT 'bronze_trades_binance', NOW() - g * INTERVAL '1 second', g, NOW() - g * INTERVAL '1 second' "
                "FROM generate_series(1, %s) g")
        scratch_db(cfg, "k2_bench_history", HISTORY_DDL, fill, (rows,))
        seconds, rss = module_run(env, "offload_watermark", {"action": "prune", "keep": 10,
                                                             "tables": ["bronze_trades_binance"],
                                                             "login_db": "k2_bench_history", **pg})
        lines.append(f"prune a history table of {rows:>9,} rows to 10 (one DELETE): {seconds:6.1f} s, control-node "
                     f"peak RSS {rss:5.0f} MiB (1 run)")
    for name in ("k2_bench_state", "k2_bench_history"):
        superuser_sql(f"DROP DATABASE IF EXISTS {name}")
    return "\n".join(lines)


def main(sections: list[str]) -> int:
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        print(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
        return 2
    sections = sections or list(SECTIONS)
    cfg = LabConfig()
    dc = stack.client()
    prefect = lab_clients.Prefect(cfg)
    env = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}",
           "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    for section in sections:
        if SECTION_RUNNERS[section](cfg, dc, prefect, env) != 0:
            return 1
    return 0


def bench_startup(cfg, dc, prefect, env) -> int:
    print("== lab start-up")
    subprocess.run(LABCTL + ["down", "--images"], check=True, capture_output=True)
    print(f"cold (images built, volumes created, from nothing): {timed(['up']):6.1f} s   (1 run)")
    warm = []
    for _ in range(RUNS):
        subprocess.run(LABCTL + ["down"], check=True, capture_output=True)
        warm.append(timed(["up"]))
    print(f"warm (images present, containers created):          {statistics.median(warm):6.1f} s   "
          f"(median of {RUNS})")
    print(f"already up (idempotent re-run):                     {statistics.median(timed(['up']) for _ in range(RUNS)):6.1f} s   "
          f"(median of {RUNS})")
    return 0


def bench_cycle(cfg, dc, prefect, env) -> int:
    print("\n== offload cycle (bronze tables, Spark local mode, one JVM per table as on K2)")
    durations = []
    for _ in range(RUNS):
        started = time.monotonic()
        run = prefect.wait(prefect.trigger(None), 600)
        durations.append(time.monotonic() - started)
        if run["state_type"] != "COMPLETED":
            print(f"cycle ended {run['state_type']}")
            return 1
    print(f"trigger -> COMPLETED: {statistics.median(durations):6.1f} s   (median of {RUNS})")
    return 0


def synthetic_tables(count: int) -> list[dict]:
    """The lab's tables, then configs of tables ClickHouse does not have (each costs its probes' queries and
    metadata reads, as a real table's would, without the lab holding 100 tables)."""
    lab_tables = yaml.safe_load((ROOT / "inventory" / "lab" / "group_vars" / "all" / "k2.yml").read_text())["k2_tables"]
    tables = [{k: v for k, v in t.items() if k != "columns"} for t in lab_tables][:count]
    for i in range(count - len(tables)):
        tables.append({**tables[i % len(lab_tables)], "source": f"bench_synthetic_{i}", "target": f"cold.bench_synthetic_{i}"})
    return tables


def bench_diagnose(cfg, dc, prefect, env) -> int:
    print("\n== diagnosis: playbooks/diagnose.yml vs the runbook's own commands run one after another")
    playbook = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), str(ROOT / "playbooks" / "diagnose.yml"),
                "-e", "report_path=/tmp/k2-bench-diagnose-{{ inventory_hostname }}.json"]
    diag = statistics.median(timed_cmd(playbook, env) for _ in range(RUNS))
    shell = statistics.median(timed_cmd([str(ROOT / "bench" / "runbook_diagnosis.sh")], env) for _ in range(RUNS))
    print(f"diagnose.yml (all tables, concurrent probes, triage, report): {diag:6.1f} s   (median of {RUNS})")
    print(f"runbook step 1-4 commands, sequential (no triage):            {shell:6.1f} s   "
          f"(median of {RUNS}; plus the engineer's reading time)")
    print(f"ratio diagnose.yml / runbook commands:                        {diag / shell:6.1f}x  (goal <= 2.0)")
    print("scaling, diagnose.yml wall time (tables beyond the lab's 3 are synthetic configs):")
    for count in (10, 50, 100):
        extra = ["-e", json.dumps({"k2_tables": synthetic_tables(count)})]
        took = statistics.median(timed_cmd(playbook + extra, env) for _ in range(RUNS))
        print(f"  {count:3d} tables, 1 host:  {took:6.1f} s   (median of {RUNS})")
    twin = [str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "lab" / "twin.py"), "b"]
    subprocess.run(twin + ["up"], check=True, capture_output=True, env=env, cwd=ROOT)
    try:
        both = ["-i", str(ROOT / ".lab" / "twins" / "hosts.yml")]
        took = statistics.median(timed_cmd(playbook + both, env) for _ in range(RUNS))
        print(f"    3 tables, 2 hosts: {took:6.1f} s   (median of {RUNS}; the lab and twin b, forks 10)")
    finally:
        subprocess.run(twin + ["down"], check=True, capture_output=True, env=env, cwd=ROOT)
    return 0


def bench_mttr(cfg, dc, prefect, env) -> int:
    print("\n== MTTR: fault injected -> remediate.yml reports verified recovery (runbook: 15-30 min)")
    only = [f for f in os.environ.get("K2_BENCH_MTTR_FAULTS", "").split(",") if f]
    for scenario, fault, before, after in MTTR_FAULTS:
        if only and fault not in only:
            continue
        total, playbook_only = [], []
        for _ in range(RUNS):
            subprocess.run(LABCTL + ["clear"], check=True, capture_output=True)
            if before == "offload":
                prefect.wait(prefect.trigger(["bronze_trades_binance"]), 600)
            started = time.monotonic()
            faults.inject(dc, cfg, fault)
            if after == "failed run":
                prefect.wait(prefect.trigger(["bronze_trades_binance"]), 600)
            remediate_started = time.monotonic()
            proc = subprocess.run([str(ROOT / ".venv" / "bin" / "ansible-playbook"),
                                   str(ROOT / "playbooks" / "remediate.yml")], capture_output=True, env=env, cwd=ROOT)
            if (proc.returncode != 0) != (fault in ESCALATING_FAULTS):
                print(f"{scenario} ({fault}): remediate.yml exit code {proc.returncode}:\n{proc.stdout.decode()[-1500:]}")
                return 1
            total.append(time.monotonic() - started)
            playbook_only.append(time.monotonic() - remediate_started)
        outcome, target = ("escalation", ESCALATING_FAULTS[fault]) if fault in ESCALATING_FAULTS else ("verified recovery", 90)
        print(f"{scenario} ({fault:<22}) fault -> {outcome} {statistics.median(total):6.1f} s, "
              f"remediate.yml alone {statistics.median(playbook_only):6.1f} s   (median of {RUNS}; target < {target} s)")
    subprocess.run(LABCTL + ["clear"], check=True, capture_output=True)
    return 0


def _alert_firing(cfg, name: str) -> bool:
    url = (f"http://127.0.0.1:{cfg.port_alertmanager}/api/v2/alerts?active=true&filter="
           + urllib.parse.quote(f'alertname="{name}"'))
    with urllib.request.urlopen(url, timeout=10) as resp:
        return bool(json.load(resp))


def _fresh_monitoring(dc, cfg) -> None:
    """Prometheus and Alertmanager without history: an earlier run's alert (the rule's 15-minute window) would
    otherwise still fire, and Alertmanager would not notify it again."""
    for name in ("k2-prometheus", "k2-alertmanager"):
        dc.containers.get(name).remove(force=True)
    subprocess.run(LABCTL + ["up"], check=True, capture_output=True)


def bench_loop(cfg, dc, prefect, env) -> int:
    print("\n== closed loop: fault -> alert -> Alertmanager -> ansible-rulebook -> remediate.yml -> verified recovery")
    only = [f for f in os.environ.get("K2_BENCH_LOOP_FAULTS", "").split(",") if f]
    lock = cfg.state_dir / "locks" / "remediation.lock"
    report = ROOT / "reports" / "remediate-k2-lab.json"
    for scenario, fault, alert, needs_runs in LOOP_FAULTS:
        if only and fault not in only:
            continue
        total, to_start, to_alert = [], [], []
        for _ in range(RUNS):
            subprocess.run(LABCTL + ["clear"], check=True, capture_output=True)
            _fresh_monitoring(dc, cfg)
            subprocess.run([str(ROOT / "scripts" / "loop.sh"), "up"], check=True, capture_output=True, cwd=ROOT)
            try:
                before = report.stat().st_mtime if report.exists() else 0.0
                started = time.monotonic()
                faults.inject(dc, cfg, fault)
                alerted = remediating = None
                next_run = 0.0
                while time.monotonic() - started < 900:
                    now = time.monotonic()
                    if alerted is None and _alert_firing(cfg, alert):
                        alerted = now
                    if remediating is None and lock.exists():
                        remediating = now
                    # The schedule's runs make the alert fire; once it fires the remediation is on its way, and a
                    # run started under it would only be refused by the manual offload (K2 schedules every 15 min).
                    if needs_runs and alerted is None and now >= next_run and not prefect.running_runs():
                        prefect.trigger(["bronze_trades_binance"])
                        next_run = now + LOOP_SCHEDULE
                    if report.exists() and report.stat().st_mtime > before and remediating is not None \
                            and not lock.exists():
                        break
                    time.sleep(1)
                status = json.loads(report.read_text())["status"] if report.exists() else None
                if status != "recovered" or alerted is None or remediating is None:
                    print(f"{scenario} ({fault}): loop ended {status!r} (alert seen: {alerted is not None}, "
                          f"remediation seen: {remediating is not None}); see .lab/eda-loop.log")
                    return 1
                total.append(time.monotonic() - started)
                to_start.append(remediating - alerted)
                to_alert.append(alerted - started)
            finally:
                subprocess.run([str(ROOT / "scripts" / "loop.sh"), "down"], check=True, capture_output=True, cwd=ROOT)
        print(f"{scenario} ({fault:<22}) fault -> verified recovery {statistics.median(total):6.1f} s; fault -> "
              f"{alert} firing {statistics.median(to_alert):5.1f} s; alert -> remediation started "
              f"{statistics.median(to_start):5.1f} s   (median of {RUNS}; no human command)")
    subprocess.run(LABCTL + ["clear"], check=True, capture_output=True)
    return 0


def bench_watermark(cfg, dc, prefect, env) -> int:
    print("\n== watermark maintenance (scratch databases on the lab's PostgreSQL; the lab's own table untouched)")
    print(watermark_bench(cfg, env))
    return 0


def bench_memory(cfg, dc, prefect, env) -> int:
    print("\n== resident memory per container (docker stats, after the cycles)")
    for ctr in sorted(stack.lab_containers(dc), key=lambda c: c.name):
        mem = ctr.stats(stream=False)["memory_stats"]
        usage = mem.get("usage", 0) - mem.get("stats", {}).get("cache", 0)
        print(f"{ctr.name:<20} {usage / 2**20:8.0f} MiB   (limit {mem.get('limit', 0) / 2**20:.0f} MiB)")
    return 0


SECTION_RUNNERS = {"startup": bench_startup, "cycle": bench_cycle, "diagnose": bench_diagnose, "mttr": bench_mttr,
                   "loop": bench_loop,
                   "watermark": bench_watermark, "memory": bench_memory}

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
