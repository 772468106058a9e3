"""The K2 twin's containers: images built locally (no registry), one user network, lab-labelled objects."""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import secrets
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import docker
from config import DEFAULT_STATE_DIR, LAB_LABEL, PROJECT_ROOT, SPARK35_VENV, LabConfig
from docker.errors import NotFound

LAB = PROJECT_ROOT / "lab"
SERVICES = LAB / "services"
BASE_IMAGE = "k2-lab/base:1"
LABELS = {LAB_LABEL: "true"}  # the images, shared by every lab instance; containers carry LabConfig.labels
ROOT_LABEL = "io.k2-lab.root"  # the checkout a container's mounts point into
SPEC_LABEL = "io.k2-lab.spec"  # digest of the spec the container was created from
# Skeleton image: host programs run from a read-only /usr, so the image holds only dirs and /etc.
SKELETON_DIRS = ("tmp", "var/tmp", "var/run", "run", "root", "home", "opt", "proc", "sys", "dev", "srv", "mnt")
ETC_EXCLUDE = {"shadow", "gshadow", "ssh", "docker", "hosts", "resolv.conf", "hostname"}


class LabError(Exception):
    """A lab command failed for a reason the operator can act on."""


def client() -> docker.DockerClient:
    try:
        dc = docker.from_env(timeout=120)
        dc.ping()
        return dc
    except Exception as exc:  # noqa: BLE001 - any failure here means "no engine"
        raise LabError(f"Docker engine not reachable ({exc.__class__.__name__}); run scripts/dockerd.sh "
                       "or `make lab-up`") from exc


def _skeleton_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in SKELETON_DIRS:
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d.endswith("tmp") else 0o755
            tar.addfile(info)
        for link in ("bin", "lib", "lib64", "sbin"):
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, f"usr/{link}"
            tar.addfile(info)
        for entry in sorted(Path("/etc").iterdir()):
            if entry.name in ETC_EXCLUDE:
                continue
            try:
                tar.add(str(entry), arcname=f"etc/{entry.name}")
            except OSError:
                continue
        for name, text in (("etc/hostname", "k2-lab\n"), ("etc/hosts", "127.0.0.1 localhost\n")):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def build_images(dc) -> list[str]:
    """Build the base and per-service images unless present. Returns the tags built now."""
    built = []
    try:
        dc.images.get(BASE_IMAGE)
    except NotFound:
        subprocess.run(["docker", "import", "-c", 'ENTRYPOINT ["/usr/bin/tini-static", "--"]',
                        "-c", 'CMD ["sleep", "infinity"]', "-c", f"LABEL {LAB_LABEL}=true", "-", BASE_IMAGE],
                       input=_skeleton_tar(), check=True, capture_output=True)
        built.append(BASE_IMAGE)
    for svc_dir in sorted((LAB / "images").iterdir()):
        tag = f"k2-lab/{svc_dir.name}:1"
        try:
            dc.images.get(tag)
        except NotFound:
            dc.images.build(path=str(svc_dir), tag=tag, pull=False, rm=True, labels=LABELS)
            built.append(tag)
    return built


SPARK_LAB_DIR = "/opt/k2-spark-lab"
FLOW_SPARK_CONTAINER = "k2-spark-iceberg"  # the flow's K2_SPARK_CONTAINER default (lab/services/flows)
SPARK_CDS_DIR = "/var/lib/k2-spark-cds"
# Lab only: the offload job's local-mode driver otherwise spends ~15 s of each ~20 s run starting and warming up
# on this 2-core machine. C1 JIT only, plus an application class-data archive built once by `labctl up`
# (a missing or stale archive is ignored by the JVM). K2's job code is unchanged; pyspark reads this variable.
SPARK_DRIVER_TUNING = ("--driver-java-options '-XX:TieredStopAtLevel=1 "
                       f"-XX:SharedArchiveFile={SPARK_CDS_DIR}/driver.jsa' pyspark-shell")


def ensure_spark_cds_archive(dc, cfg: LabConfig) -> bool:
    """Build the Spark driver's class-data archive unless one made for this JVM and these jars exists (the JVM
    checks each jar's size and mtime: a reinstalled venv needs a new archive). Returns True when built. Without it
    the offload job is correct, only ~10 s slower per run."""
    import pyspark  # the project venv's, which the container mounts
    jars = sorted((Path(pyspark.__file__).parent / "jars").glob("*.jar"))
    key = f"{Path(_java_home()).resolve()} pyspark {pyspark.__version__} {len(jars)} jars, newest " \
          f"{max((j.stat().st_mtime for j in jars), default=0):.0f}\n"
    key_file, archive = cfg.spark_cds_dir / "driver.key", cfg.spark_cds_dir / "driver.jsa"
    if archive.exists() and key_file.exists() and key_file.read_text() == key:
        return False
    cfg.spark_cds_dir.mkdir(parents=True, exist_ok=True)
    archive.unlink(missing_ok=True)
    if _share_spark_cds_archive(cfg, key, archive):
        key_file.write_text(key)
        return False
    res = dc.containers.get(cfg.container("spark-iceberg")).exec_run(
        ["python3", f"{SPARK_LAB_DIR}/build_cds_archive.py", f"{SPARK_CDS_DIR}/driver.jsa"],
        environment={"PYSPARK_SUBMIT_ARGS": "pyspark-shell"})  # no archive to read while writing one
    if not archive.exists():
        raise LabError(f"Spark class-data archive not written (exit {res.exit_code}): "
                       f"{res.output.decode(errors='replace').strip()[-400:]}")
    key_file.write_text(key)
    return True


def _share_spark_cds_archive(cfg: LabConfig, key: str, archive: Path) -> bool:
    """Take another lab instance's archive made for the same JVM and jars (every instance mounts the same /usr and
    venv at the same paths) instead of building one: a hard link, so that the donor's `down` or rebuild (unlink,
    then a new file) leaves this copy intact."""
    for donor in (DEFAULT_STATE_DIR / "spark-cds", *sorted(DEFAULT_STATE_DIR.glob("twins/*/spark-cds"))):
        if donor == cfg.spark_cds_dir:
            continue
        try:
            if (donor / "driver.key").read_text() != key:
                continue
            try:
                archive.hardlink_to(donor / "driver.jsa")
            except OSError:  # another filesystem, or the donor's archive is gone
                shutil.copy2(donor / "driver.jsa", archive)
            return True
        except OSError:
            continue
    return False


def _java_home() -> str:
    java = shutil.which("java")
    if not java:
        raise LabError("java not found on the host: install openjdk-17-jre-headless (Spark needs it)")
    return str(Path(java).resolve().parent.parent)


def service_specs(cfg: LabConfig) -> list[dict]:
    """Container specs, in start order. Host programs and the project venv are mounted read-only."""
    db_env = {"PREFECT_DB_HOST": "prefect-db", "PREFECT_DB_PORT": "5432", "PREFECT_DB_NAME": cfg.db_name,
              "PREFECT_DB_USER": cfg.db_user, "PREFECT_DB_PASSWORD": cfg.db_password}
    offload_env = {"K2_OFFLOAD_LAYERS": ",".join(cfg.layers), "CLICKHOUSE_PASSWORD": cfg.clickhouse_password}
    ch_limit = 1536 * 1024 * 1024
    spark = cfg.container("spark-iceberg")
    # The flow `docker exec`s into the Spark container by name; K2's name is the flow's default, so only a twin passes
    # its own (the main lab's worker spec, and so its digest, stays as it was).
    spark_env = {} if spark == FLOW_SPARK_CONTAINER else {"K2_SPARK_CONTAINER": spark}
    specs = [
        dict(name=cfg.container("prefect-db"), image="k2-lab/postgres:1", aliases=["prefect-db"], mem="512m",
             ports={5432: cfg.port_postgres},
             volumes={cfg.volume("pgdata"): "/var/lib/postgresql/data"},
             binds={str(SERVICES / "postgres/entrypoint.sh"): "/docker-entrypoint.sh",
                    str(SERVICES / "postgres"): "/docker-entrypoint-initdb.d"},
             env={"POSTGRES_USER": cfg.db_user, "POSTGRES_PASSWORD": cfg.db_password, "POSTGRES_DB": cfg.db_name,
                  "WATERMARK_LAYOUT": cfg.watermark_layout}),
        dict(name=cfg.container("clickhouse"), image="k2-lab/clickhouse:1", aliases=["clickhouse"], mem=ch_limit,
             ports={8123: cfg.port_clickhouse}, volumes={cfg.volume("chdata"): "/var/lib/clickhouse"},
             env={"CLICKHOUSE_PASSWORD": cfg.clickhouse_password, "CLICKHOUSE_DATA_DIR": "/var/lib/clickhouse",
                  "LAB_MEMORY_LIMIT_BYTES": str(ch_limit)}),
        dict(name=cfg.container("prefect-server"), image="k2-lab/prefect:1", aliases=["prefect-server"], mem="1g",
             ports={4200: cfg.port_prefect},
             env={"PREFECT_API_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://{cfg.db_user}:{cfg.db_password}"
                                                        f"@prefect-db:5432/{cfg.db_name}",
                  "PREFECT_UI_API_URL": f"http://127.0.0.1:{cfg.port_prefect}/api"}),
        dict(name=spark, image="k2-lab/spark-iceberg:1", aliases=["spark-iceberg"], mem="2g",
             cap_drop=["DAC_OVERRIDE", "DAC_READ_SEARCH"],  # so that warehouse permissions bite, as for K2's user
             binds={str(SERVICES / "offload"): "/home/iceberg/offload",
                    str(cfg.faults_dir): "/run/lab-faults", str(SERVICES / "spark"): SPARK_LAB_DIR},
             rw_binds={str(cfg.warehouse_dir): "/home/iceberg/warehouse", str(cfg.spark_cds_dir): SPARK_CDS_DIR},
             # Memory pressure lives in the container's tmpfs: a restart relieves it, as on K2 (runbook 3a).
             tmpfs={"/run/lab-pressure": "size=1m"},
             env={**db_env, **offload_env, "JAVA_HOME": _java_home(), "LAB_FAULT_DIR": "/run/lab-faults",
                  "PYSPARK_SUBMIT_ARGS": SPARK_DRIVER_TUNING}),
        dict(name=cfg.container("prefect-worker"), image="k2-lab/prefect:1", aliases=["prefect-worker"], mem="768m",
             ports={8000: cfg.port_metrics},
             binds={str(cfg.flows_dir): "/opt/prefect/flows", str(SERVICES / "prefect"): "/opt/prefect/lab"},
             rw_binds={"/var/run/docker.sock": "/var/run/docker.sock"},
             command=["python3", "/opt/prefect/lab/worker_supervisor.py"],
             env={**db_env, **offload_env, "PREFECT_API_URL": "http://prefect-server:4200/api",
                  "PREFECT_WORKER_QUERY_SECONDS": "1", "PYTHONPATH": "/opt/prefect/flows",
                  # A heartbeat every 10 s (K2: Prefect's 30 s), so that a dead worker shows within 30 s.
                  "PREFECT_WORKER_HEARTBEAT_SECONDS": "10",
                  "PROMETHEUS_MULTIPROC_DIR": "/tmp/offload-metrics",
                  "K2_OFFLOAD_TASK_RETRY_DELAY_SECONDS": str(cfg.task_retry_delay_seconds),
                  "K2_OFFLOAD_SUBFLOW_RETRIES": str(cfg.subflow_retries), **spark_env}),
        dict(name=cfg.container("feed"), image="k2-lab/feed:1", aliases=["feed"], mem="384m",
             env={"CLICKHOUSE_PASSWORD": cfg.clickhouse_password,
                  "K2_LAB_FEED_ROWS_PER_SECOND": str(cfg.feed_rows_per_second),
                  "K2_LAB_BACKFILL_MINUTES": str(cfg.backfill_minutes)}),
        # Monitoring lives in the host's network namespace, listening on 127.0.0.1 only: Alertmanager must reach the
        # alert-driven loop's webhook on the host's loopback (make loop-up), which no bridge container can. So
        # Prometheus reaches Alertmanager there too, and scrapes the worker through its published port.
        dict(name=cfg.container("prometheus"), image="k2-lab/prometheus:1", aliases=["prometheus"], mem="256m",
             network_mode="host", ports={cfg.port_prometheus: cfg.port_prometheus},
             binds={str(cfg.state_dir / "prometheus"): "/etc/prometheus"},
             command=["/usr/bin/prometheus", "--config.file=/etc/prometheus/prometheus.yml",
                      "--storage.tsdb.path=/prometheus", f"--web.listen-address=127.0.0.1:{cfg.port_prometheus}",
                      f"--web.external-url=http://127.0.0.1:{cfg.port_prometheus}"]),
        dict(name=cfg.container("alertmanager"), image="k2-lab/prometheus:1", aliases=["alertmanager"], mem="128m",
             network_mode="host", ports={cfg.port_alertmanager: cfg.port_alertmanager},
             binds={str(cfg.state_dir / "prometheus"): "/etc/prometheus",
                    str(cfg.state_dir / "secrets"): "/etc/alertmanager-secrets"},
             command=["/usr/bin/prometheus-alertmanager", "--config.file=/etc/prometheus/alertmanager.yml",
                      "--storage.path=/tmp/alertmanager", f"--web.listen-address=127.0.0.1:{cfg.port_alertmanager}",
                      f"--web.external-url=http://127.0.0.1:{cfg.port_alertmanager}", "--cluster.listen-address="]),
    ]
    if cfg.k2_checkout:
        conform_to_k2(cfg.k2_checkout, {s["name"]: s for s in specs}, cfg)
    return specs


K2_WATERMARK_DDL = "/k2/offload-watermarks.sql"


def conform_to_k2(k2: Path, specs: dict, cfg: LabConfig) -> None:
    """The conformance lane: K2's own files, read from the checkout at run time, where K2 has them. PostgreSQL
    initialises the watermark table from K2's DDL as it is; the Spark container runs K2's offload job and
    watermark_pg.py on Spark 3.5 with the Java Iceberg runtime (.venv-spark35); only the job's JDBC read of
    ClickHouse is answered by the stand-in (sitecustomize.py)."""
    db = specs[cfg.container("prefect-db")]
    db["binds"][str(k2 / "docker/postgres/ddl/offload-watermarks.sql")] = K2_WATERMARK_DDL
    db["env"]["WATERMARK_DDL"] = K2_WATERMARK_DDL
    spark = specs[cfg.container("spark-iceberg")]
    del spark["binds"][str(SERVICES / "offload")]  # the twin's job
    spark["binds"].update({str(k2 / "docker/offload"): "/home/iceberg/offload",
                           str(k2 / "docker/iceberg/ddl"): "/home/iceberg/ddl",
                           str(SPARK35_VENV): str(SPARK35_VENV)})
    spark["env"].pop("PYSPARK_SUBMIT_ARGS")  # the twin's driver tuning is for its own Spark 4 jars
    spark["env"].update({"PATH": f"{SPARK35_VENV}/bin:/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin",
                         "PYTHONPATH": "/lab/services/conformance:/lab/services/offload",
                         "SPARK_LOCAL_IP": "127.0.0.1"})


EARLY_WARNING_RULES = "k2-offload-early-warning.rules.yml"
WEBHOOK_TOKEN_FILE = "eda-webhook.token"


def webhook_token(cfg: LabConfig) -> Path:
    """The lab's secret for the alert-driven loop's webhook (scripts/loop.sh reads it, Alertmanager sends it): made
    once per state dir, mode 0600, never in the repository."""
    path = cfg.state_dir / "secrets" / WEBHOOK_TOKEN_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path


def render_prometheus(cfg: LabConfig) -> None:
    out = cfg.state_dir / "prometheus"
    (out / "rules").mkdir(parents=True, exist_ok=True)
    src = SERVICES / "prometheus"
    values = {"scrape": cfg.scrape_interval, "alert_for": cfg.alert_for, "port_metrics": cfg.port_metrics,
              "port_alertmanager": cfg.port_alertmanager, "port_eda": cfg.port_eda, "stack_host": cfg.stack_host,
              "token_file": f"/etc/alertmanager-secrets/{WEBHOOK_TOKEN_FILE}"}
    webhook_token(cfg)
    (out / "prometheus.yml").write_text((src / "prometheus.yml.tmpl").read_text().format(**values))
    (out / "rules/iceberg-offload-alerts.yml").write_text(
        (src / "iceberg-offload-alerts.yml.tmpl").read_text().format(**values))
    (out / "alertmanager.yml").write_text((src / "alertmanager.yml.tmpl").read_text().format(**values))
    # The product's early-warning rules as shipped, their `for` shortened like the K2 rules' above, so that a
    # stopped worker (IcebergOffloadMetricsDown) reaches the alert-driven loop within seconds.
    early = (PROJECT_ROOT / "prometheus" / EARLY_WARNING_RULES).read_text()
    (out / "rules" / EARLY_WARNING_RULES).write_text(
        re.sub(r"^(\s+for: )\S+$", rf"\g<1>{cfg.early_warning_for}", early, flags=re.M))


FLOW_TIMEOUT_LITERAL = "timeout=600)"  # K2's literal in offload_table's subprocess.run


def render_flows(cfg: LabConfig) -> bool:
    """Write the flow files the worker mounts (the Docker host's copy, which Scenario 5 edits) with the lab's
    task timeout. Returns True when a file changed, e.g. when a raised timeout was put back."""
    cfg.flows_dir.mkdir(parents=True, exist_ok=True)
    changed = False
    for src in sorted((SERVICES / "flows").glob("*.py")):
        text = src.read_text()
        if src.name == "iceberg_offload_flow.py":
            if text.count(FLOW_TIMEOUT_LITERAL) != 1:
                raise LabError(f"{src} must contain exactly one {FLOW_TIMEOUT_LITERAL!r}")
            text = text.replace(FLOW_TIMEOUT_LITERAL, f"timeout={cfg.task_timeout_seconds})")
        dest = cfg.flows_dir / src.name
        if not dest.exists() or dest.read_text() != text:
            dest.write_text(text)
            changed = True
    return changed


def spec_digest(spec: dict) -> str:
    """Short digest of a container spec: a container made from an older spec is re-created."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


def ensure_network(dc, cfg: LabConfig):
    try:
        return dc.networks.get(cfg.network)
    except NotFound:
        return dc.networks.create(cfg.network, driver="bridge", labels=cfg.labels)


def ensure_container(dc, cfg: LabConfig, spec: dict) -> str:
    """Create and start, or start, or leave running. Returns what was done."""
    try:
        ctr = dc.containers.get(spec["name"])
    except NotFound:
        ctr = None
    digest = spec_digest(spec)
    if ctr is not None and ctr.labels.get(SPEC_LABEL) != digest:
        ctr.remove(force=True)  # its mounts/env/limits changed: named volumes keep the data
        ctr = None
    if ctr is not None:
        if ctr.status == "running":
            return "running"
        ctr.start()
        return "started"
    volumes = {h: {"bind": c, "mode": "ro"} for h, c in spec.get("binds", {}).items()}
    volumes.update({h: {"bind": c, "mode": "rw"} for h, c in spec.get("rw_binds", {}).items()})
    volumes.update({v: {"bind": c, "mode": "rw"} for v, c in spec.get("volumes", {}).items()})
    for vol in spec.get("volumes", {}):
        try:
            dc.volumes.get(vol)
        except NotFound:
            dc.volumes.create(vol, labels=cfg.labels)
    common = service_common(cfg)
    volumes.update({h: {"bind": c, "mode": "ro"} for h, c in common["mounts"].items()})
    # In the host's network namespace the process binds its ports itself (127.0.0.1, its command says so): nothing
    # to publish, no hostname of its own, no user network to join.
    host_net = spec.get("network_mode") == "host"
    net = {"network_mode": "host"} if host_net else {
        "ports": {f"{c}/tcp": ("127.0.0.1", h) for c, h in spec.get("ports", {}).items()},
        "hostname": spec["aliases"][0]}
    ctr = dc.containers.create(
        spec["image"], name=spec["name"], command=spec.get("command"),
        labels={**cfg.labels, "io.k2-lab.service": spec["name"], ROOT_LABEL: str(PROJECT_ROOT), SPEC_LABEL: digest},
        environment={**common["env"], **spec.get("env", {})}, volumes=volumes, mem_limit=spec["mem"],
        cap_drop=spec.get("cap_drop"), tmpfs=spec.get("tmpfs"), detach=True, **net)
    if not host_net:
        dc.networks.get(cfg.network).connect(ctr, aliases=spec["aliases"])
    ctr.start()
    return "created"


def service_common(cfg: LabConfig) -> dict:
    venv, base = str(cfg.venv), str(cfg.python_base_prefix)
    mounts = {"/usr": "/usr", venv: venv, str(LAB): "/lab"}
    if not base.startswith("/usr"):
        mounts[base] = base
    env = {"PATH": f"{venv}/bin:/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin", "TZ": "UTC", "LANG": "C.UTF-8",
           "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    return {"mounts": mounts, "env": env}


def wait_for(what: str, probe, timeout: float = 90.0, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = probe()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 - keep polling until the deadline
            last = exc
        time.sleep(interval)
    raise LabError(f"{what} not ready after {timeout:.0f} s ({last or 'no answer'}); see `docker logs`")


def label_filter(cfg: LabConfig | None = None) -> dict:
    """Docker filter for this lab instance's containers, networks and volumes (the main lab's by default)."""
    return {"label": f"{LAB_LABEL}={(cfg or LabConfig()).instance}"}


def lab_containers(dc, cfg: LabConfig | None = None):
    return dc.containers.list(all=True, filters=label_filter(cfg))


def foreign_lab(dc, cfg: LabConfig | None = None) -> list[str]:
    """Lab containers created from another checkout (their mounts point elsewhere): they must be replaced."""
    return [c.name for c in lab_containers(dc, cfg) if c.labels.get(ROOT_LABEL) != str(PROJECT_ROOT)]
