"""Command line of the K2 twin lab: up, down, status, fault, clear, cycle, verify-data.

Run through the Makefile (make lab-up, lab-fault FAULT=..., ...) or `.venv/bin/python lab/labctl.py`.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "module_utils"))
sys.path.insert(0, str(Path(__file__).resolve().parent / "services" / "flows"))

import faults  # noqa: E402
import lab_clients  # noqa: E402
import offload_truth  # noqa: E402
import stack  # noqa: E402
from config import SPARK35_VENV, TWINS_DIR, LabConfig  # noqa: E402
from stack import LabError  # noqa: E402
from table_config import TABLE_CONFIG, by_source  # noqa: E402

DDL = stack.SERVICES / "clickhouse" / "ddl.sql"
K2_SILVER_DDL = "docker/clickhouse/schema/05-silver-v2-migration.sql"  # K2's silver_trades v2: UUID, Enum8, ...
SILVER_TABLE = "CREATE TABLE IF NOT EXISTS k2.silver_trades"


def clickhouse_ddl(cfg: LabConfig) -> list[str]:
    """The hot tier's DDL: the twin's, whose silver table the conformance lane takes from K2's checkout with its
    real types (K2 ships no DDL file for its v2 bronze tables; the twin's follow K2's fact sheet)."""
    statements = [s for s in DDL.read_text().split(";") if "CREATE" in s]
    if cfg.k2_checkout:
        k2_silver = next(s for s in (cfg.k2_checkout / K2_SILVER_DDL).read_text().split(";") if SILVER_TABLE in s)
        statements = [k2_silver if SILVER_TABLE in s else s for s in statements]
    return statements


def _lane(cfg: LabConfig) -> str:
    return f"K2's own code from {cfg.k2_checkout}" if cfg.k2_checkout else "the twin's own code"


def _check_lane(cfg: LabConfig) -> None:
    """One lab runs one lane: K2's Hadoop-catalog tables and the twin's SQL catalog never share a warehouse."""
    marker = cfg.state_dir / "lane"
    if marker.exists() and marker.read_text() != _lane(cfg):
        raise LabError(f"the lab runs {marker.read_text()}, not {_lane(cfg)}: `make lab-down` first")
    if cfg.k2_checkout and not (SPARK35_VENV / ".requirements.sha").exists():
        raise LabError(f"{SPARK35_VENV.name} missing: run scripts/spark35.sh (make lab-up K2_SOURCE=... does)")
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(_lane(cfg))


def _tables(cfg: LabConfig) -> list[dict]:
    return [t for t in TABLE_CONFIG if t["layer"] in cfg.layers]


def up(cfg: LabConfig, args) -> int:
    started = time.monotonic()
    dc = stack.client()
    foreign = stack.foreign_lab(dc, cfg)
    if foreign:
        print(f"replacing a lab from another checkout ({', '.join(foreign)})")
        down(cfg, argparse.Namespace(images=False))
    _check_lane(cfg)
    built = stack.build_images(dc)
    if built:
        print(f"built images: {', '.join(built)}")
    cfg.warehouse_dir.mkdir(parents=True, exist_ok=True)
    cfg.warehouse_dir.chmod(0o775)
    cfg.faults_dir.mkdir(parents=True, exist_ok=True)
    stack.render_prometheus(cfg)
    stack.render_flows(cfg)
    stack.ensure_network(dc, cfg)
    specs = {s["name"]: s for s in stack.service_specs(cfg)}
    _check_ports(dc, cfg, specs)
    db, clickhouse, server = cfg.container("prefect-db"), cfg.container("clickhouse"), cfg.container("prefect-server")
    for name in (db, clickhouse, server, cfg.container("spark-iceberg"), cfg.container("prometheus"),
                 cfg.container("alertmanager")):
        print(f"{name}: {stack.ensure_container(dc, cfg, specs[name])}")
    stack.wait_for(db, lambda: dc.containers.get(db).exec_run(
        ["/usr/lib/postgresql/15/bin/pg_isready", "-q", "-h", "127.0.0.1", "-U", "postgres"]).exit_code == 0)
    stack.wait_for(clickhouse, lambda: lab_clients.url_ok(f"http://127.0.0.1:{cfg.port_clickhouse}/ping"))
    ch = lab_clients.clickhouse(cfg, database="default")
    for statement in clickhouse_ddl(cfg):
        ch.command(statement)
    prefect = lab_clients.Prefect(cfg)
    stack.wait_for(server, prefect.healthy, timeout=120)
    for name in (cfg.container("prefect-worker"), cfg.container("feed")):
        print(f"{name}: {stack.ensure_container(dc, cfg, specs[name])}")
    worker = dc.containers.get(cfg.container("prefect-worker"))
    try:
        prefect.deployment()
    except Exception:  # noqa: BLE001 - not deployed yet
        res = worker.exec_run(["python3", "/opt/prefect/lab/deploy.py"], environment={"PYTHONPATH": "/opt/prefect/flows"})
        if res.exit_code != 0:
            raise LabError(f"deployment failed: {res.output.decode(errors='replace').strip()[-400:]}") from None
        print("deployed iceberg-offload-main/iceberg-offload-15min")
    print(f"iceberg-offload-main/iceberg-offload-15min: {prefect.set_schedule(cfg.schedule_seconds)}")
    if cfg.k2_checkout:
        res = dc.containers.get(cfg.container("spark-iceberg")).exec_run(
            ["python3", "/lab/services/conformance/create_cold_tables.py", *cfg.layers])
        if res.exit_code != 0:
            raise LabError(f"K2's Iceberg DDL failed: {res.output.decode(errors='replace').strip()[-600:]}")
        print(f"{cfg.container('spark-iceberg')}: K2's cold tables ({', '.join(cfg.layers)}) from K2's Iceberg DDL")
    elif stack.ensure_spark_cds_archive(dc, cfg):
        print(f"{cfg.container('spark-iceberg')}: built the Spark driver's class-data archive")
    stack.wait_for("worker polling pool iceberg-offload", prefect.worker_online, timeout=60)
    stack.wait_for("offload metrics", lambda: lab_clients.url_ok(f"http://127.0.0.1:{cfg.port_metrics}/metrics"))
    print(f"lab up in {time.monotonic() - started:.1f} s, running {_lane(cfg)}")
    return 0


def _check_ports(dc, cfg, specs) -> None:
    import socket
    running = {c.name for c in dc.containers.list(filters=stack.label_filter(cfg))}
    for spec in specs.values():
        if spec["name"] in running:
            continue
        for port in spec.get("ports", {}).values():
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    raise LabError(f"port 127.0.0.1:{port} needed by {spec['name']} is in use; free it or set the "
                                   "matching K2_LAB_PORT_* variable")


def down(cfg: LabConfig, args) -> int:
    """Remove this instance only: what carries its own label value (another instance's containers, network and
    volumes carry theirs) and its state dir."""
    if args.images and not cfg.is_main:
        raise LabError("the images are shared with the main lab: remove them with the main lab's `down --images`")
    dc = stack.client()
    for ctr in stack.lab_containers(dc, cfg):
        ctr.remove(force=True)
        print(f"removed container {ctr.name}")
    for net in dc.networks.list(filters=stack.label_filter(cfg)):
        net.remove()
        print(f"removed network {net.name}")
    for vol in dc.volumes.list(filters=stack.label_filter(cfg)):
        vol.remove(force=True)
        print(f"removed volume {vol.name}")
    if args.images:
        # Newest first: a service image is built FROM the base image, which Docker refuses to remove before it.
        images = dc.images.list(filters={"label": "io.k2-lab.managed=true"})
        for img in sorted(images, key=lambda i: i.attrs.get("Created", ""), reverse=True):
            dc.images.remove(img.id, force=True)
        print("removed lab images")
    _remove_state_dir(cfg)
    return 0


def _remove_state_dir(cfg: LabConfig) -> None:
    if not cfg.state_dir.exists():
        return
    for entry in cfg.state_dir.iterdir():
        if entry == TWINS_DIR:  # the twins' state dirs, nested in the main lab's: each twin's own `down` removes it
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    if not any(cfg.state_dir.iterdir()):
        cfg.state_dir.rmdir()


def status(cfg: LabConfig, args) -> int:
    dc = stack.client()
    containers = {c.name: c for c in stack.lab_containers(dc, cfg)}
    if not containers:
        raise LabError("the lab is not up: run `make lab-up`" if cfg.is_main else
                       f"the twin {cfg.prefix}* is not up: run `make lab-twin-up TWIN=<name>`")
    healthy = True
    for spec in stack.service_specs(cfg):
        ctr = containers.get(spec["name"])
        state = ctr.status if ctr else "absent"
        detail = ""
        if ctr and state == "exited":
            st = ctr.attrs["State"]
            detail = f"exit {st['ExitCode']}{' OOMKilled' if st.get('OOMKilled') else ''}"
        healthy &= state == "running"
        print(f"{spec['name']:<20} {state:<9} {detail}")
    probes = {
        "clickhouse /ping": lambda: lab_clients.url_ok(f"http://127.0.0.1:{cfg.port_clickhouse}/ping"),
        "prefect /api/health": lambda: lab_clients.Prefect(cfg).healthy(),
        f"offload metrics :{cfg.port_metrics}": lambda: lab_clients.url_ok(f"http://127.0.0.1:{cfg.port_metrics}/metrics"),
        "prometheus ready": lambda: lab_clients.url_ok(f"http://127.0.0.1:{cfg.port_prometheus}/-/ready"),
    }
    for name, probe in probes.items():
        try:
            ok = bool(probe())
        except Exception:  # noqa: BLE001 - a failed probe is reported, not raised
            ok = False
        healthy &= ok
        print(f"{name:<24} {'ok' if ok else 'FAIL'}")
    active = json.loads((cfg.state_dir / "faults.json").read_text()) if (cfg.state_dir / "faults.json").exists() else {}
    print(f"active faults: {', '.join(active) or 'none'}")
    return 0 if healthy else 1


def fault(cfg: LabConfig, args) -> int:
    if args.name not in faults.FAULTS:
        raise LabError(f"unknown fault {args.name!r}; choose one of: {', '.join(faults.FAULTS)}")
    if args.table not in {t["source_table"] for t in TABLE_CONFIG}:
        raise LabError(f"unknown table {args.table!r}")
    if args.at_step:
        f = faults.inject_during_remediation(stack.client(), cfg, args.name, args.at_step, args.running_run, args.table)
    else:
        f = faults.inject(stack.client(), cfg, args.name, args.table)
    print(f"injected {f.name} ({f.label}) on {args.table}: {f.describe(cfg)}")
    return 0


def reset_table(cfg: LabConfig, table: str) -> None:
    """Lab-only repair after a data fault: drop the cold copy and restart the watermark at the epoch, so the
    next cycle re-offloads the whole hot tier (possible because the lab's hot data is well inside TTL)."""
    cfg_t = by_source(table)
    shutil.rmtree(offload_truth.cold_table_dir(cfg.warehouse_dir, cfg_t["target_table"]), ignore_errors=True)
    import sqlite3
    catalog = cfg.warehouse_dir / "catalog.db"
    if catalog.exists():
        with sqlite3.connect(catalog) as db:
            namespace, name = cfg_t["target_table"].split(".")
            db.execute("DELETE FROM iceberg_tables WHERE table_namespace = ? AND table_name = ?", (namespace, name))
    with lab_clients.pg(cfg) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM information_schema.columns WHERE table_name = 'offload_watermarks' "
                    "AND column_name = 'last_offload_timestamp'")
        if cur.fetchone():
            cur.execute("DELETE FROM offload_watermarks WHERE table_name = %s", (table,))
            cur.execute("INSERT INTO offload_watermarks (table_name, last_offload_timestamp, last_offload_max_sequence,"
                        " status) VALUES (%s, '1970-01-01 00:00:00+00', 0, 'initialized')", (table,))
        else:
            cur.execute("DELETE FROM offload_watermarks WHERE table_name = %s", (table,))
            cur.execute("INSERT INTO offload_watermarks (table_name, max_timestamp, sequence_number) "
                        "VALUES (%s, '1970-01-01 00:00:00+00', 0)", (table,))


def clear(cfg: LabConfig, args) -> int:
    actions = faults.clear(stack.client(), cfg, lambda t: reset_table(cfg, t))
    stack.wait_for("worker polling pool iceberg-offload", lab_clients.Prefect(cfg).worker_online, timeout=60)
    print("\n".join(actions) if actions else "nothing to clear")
    return 0


def cycle(cfg: LabConfig, args) -> int:
    prefect = lab_clients.Prefect(cfg)
    tables = args.tables.split(",") if args.tables else None
    run_id = prefect.trigger(tables)
    run = prefect.wait(run_id, args.timeout)
    print(json.dumps({"flow_run_id": run_id, "state": run["state_type"], "name": run["name"]}))
    return 0 if run["state_type"] == "COMPLETED" else 1


def schedule(cfg: LabConfig, args) -> int:
    print(lab_clients.Prefect(cfg).set_schedule(args.seconds))
    return 0


def watermark_of(cfg: LabConfig, table: str):
    with lab_clients.pg(cfg) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM information_schema.columns WHERE table_name = 'offload_watermarks' "
                    "AND column_name = 'last_offload_timestamp'")
        col = "last_offload_timestamp" if cur.fetchone() else "max_timestamp"
        cur.execute(f"SELECT max({col}) FROM offload_watermarks WHERE table_name = %s", (table,))  # noqa: S608
        return cur.fetchone()[0]


def truth(cfg: LabConfig, table: str) -> dict:
    t = by_source(table)
    entry = {"source": table, "target": t["target_table"], "timestamp_col": t["timestamp_col"],
             "columns": t["columns"]}
    return offload_truth.table_truth(lab_clients.clickhouse(cfg), entry, watermark_of(cfg, table), cfg.warehouse_dir,
                                     "/home/iceberg/warehouse")


def verify_data(cfg: LabConfig, args) -> int:
    tables = args.tables.split(",") if args.tables else [t["source_table"] for t in _tables(cfg)]
    results = [truth(cfg, t) for t in tables]
    if args.json:
        print(json.dumps(results))
    else:
        for r in results:
            print(f"{r['table']:<24} hot={r['hot_rows']:<8} cold={r['cold_rows']:<8} missing={r['missing']:<6} "
                  f"duplicated={r['duplicated']}")
    return 0 if all(r["missing"] == 0 and r["duplicated"] == 0 for r in results) else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="labctl", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("up")
    p = sub.add_parser("down")
    p.add_argument("--images", action="store_true", help="also remove the lab's images")
    sub.add_parser("status")
    p = sub.add_parser("fault")
    p.add_argument("name")
    p.add_argument("--table", default=faults.DEFAULT_TABLE)
    p.add_argument("--at-step", help="mid-remediation: wait until remediate.yml holds the lock at a step containing "
                                     "this text (e.g. 'Scenario 4', 'verification'), then inject")
    p.add_argument("--running-run", action="store_true", help="with --at-step: also wait for a RUNNING flow run")
    sub.add_parser("clear")
    p = sub.add_parser("cycle")
    p.add_argument("--tables", help="comma-separated source tables (default: all enabled)")
    p.add_argument("--timeout", type=float, default=300)
    p = sub.add_parser("schedule", help="the deployment's schedule: live every SECONDS s, or paused with 0")
    p.add_argument("seconds", type=int)
    p = sub.add_parser("verify-data")
    p.add_argument("--tables")
    p.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    cfg = LabConfig()
    handlers = {"up": up, "down": down, "status": status, "fault": fault, "clear": clear, "cycle": cycle,
                "schedule": schedule, "verify-data": verify_data}
    try:
        return handlers[args.cmd](cfg, args)
    except LabError as exc:
        print(f"lab {args.cmd}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - one line for the operator, never a traceback
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"lab {args.cmd}: {exc.__class__.__name__}: {first} (is the lab up? `make lab-status`)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
