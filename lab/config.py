"""Lab configuration: K2's names and ports by default, every value overridable by a K2_LAB_* env var."""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LAB_LABEL = "io.k2-lab.managed"
# The main lab: K2's container names, LAB_LABEL=true, state in .lab. A twin (lab/twin.py) differs in all three.
DEFAULT_PREFIX = "k2-"
DEFAULT_STATE_DIR = PROJECT_ROOT / ".lab"
TWINS_DIR = DEFAULT_STATE_DIR / "twins"  # lab/twin.py: each twin's state dir, and their inventory
K2_JOB = "docker/offload/offload_generic.py"  # what makes a directory a K2 checkout
SPARK35_VENV = PROJECT_ROOT / ".venv-spark35"  # scripts/spark35.sh: Spark 3.5 + Java Iceberg for K2's own job


def _env(name: str, default: str) -> str:
    return os.environ.get(f"K2_LAB_{name}", default)


def _lane_default(twin: str, k2_code: str) -> str:
    """A default that differs in the conformance lane (K2_SOURCE set: K2's own code)."""
    return k2_code if os.environ.get("K2_SOURCE") else twin


@dataclass(frozen=True)
class LabConfig:
    # Container names are f"{prefix}{service}" (k2-clickhouse, ...): another prefix is another K2 stack on this engine.
    prefix: str = field(default_factory=lambda: _env("PREFIX", DEFAULT_PREFIX))
    network: str = field(default_factory=lambda: _env("NETWORK", "k2-network"))
    # Host ports default to K2's; all bind 127.0.0.1.
    port_clickhouse: int = field(default_factory=lambda: int(_env("PORT_CLICKHOUSE", "8123")))
    port_prefect: int = field(default_factory=lambda: int(_env("PORT_PREFECT", "4200")))
    port_prometheus: int = field(default_factory=lambda: int(_env("PORT_PROMETHEUS", "9090")))
    port_alertmanager: int = field(default_factory=lambda: int(_env("PORT_ALERTMANAGER", "9093")))
    port_metrics: int = field(default_factory=lambda: int(_env("PORT_METRICS", "8000")))
    port_postgres: int = field(default_factory=lambda: int(_env("PORT_POSTGRES", "15432")))
    # The alert-driven loop's webhook (make loop-up), where the lab's Alertmanager sends the runbook's alert.
    port_eda: int = field(default_factory=lambda: int(_env("PORT_EDA", "5000")))
    # The stack's inventory host (inventory/lab/hosts.yml), which its Prometheus puts on every alert (external label
    # k2_stack): the alert-driven loop acts on that host only.
    stack_host: str = field(default_factory=lambda: _env("STACK_HOST", "k2-lab"))
    # Throwaway lab credentials (never used outside the lab).
    db_name: str = "prefect"
    db_user: str = "prefect"
    db_password: str = field(default_factory=lambda: _env("DB_PASSWORD", "k2-lab-prefect"))
    clickhouse_password: str = field(default_factory=lambda: _env("CLICKHOUSE_PASSWORD", "k2-lab-clickhouse"))
    # "state" = K2's real one-row-per-table schema; "history" = the runbook's append-only layout.
    watermark_layout: str = field(default_factory=lambda: _env("WATERMARK_LAYOUT", "state"))
    # Layers whose tables the flow offloads (bronze always; silver/gold selectable).
    layers: tuple[str, ...] = field(default_factory=lambda: tuple(
        _env("LAYERS", _lane_default("bronze", "bronze,silver")).split(",")))
    feed_rows_per_second: int = field(default_factory=lambda: int(_env("FEED_ROWS_PER_SECOND", "20")))
    backfill_minutes: int = field(default_factory=lambda: int(_env("BACKFILL_MINUTES", "60")))
    # K2: task timeout 600 s, 2 retries 30 s apart, subflow retry after 300 s. The lab shortens them.
    # K2's own job starts a Spark 3.5 JVM per table (~20 s here): the conformance lane gives it K2's own timeout.
    task_timeout_seconds: int = field(default_factory=lambda: int(_env(
        "TASK_TIMEOUT_SECONDS", _lane_default("30", "600"))))
    task_retry_delay_seconds: int = field(default_factory=lambda: int(_env("TASK_RETRY_DELAY_SECONDS", "1")))
    subflow_retries: int = field(default_factory=lambda: int(_env("SUBFLOW_RETRIES", "0")))
    # The live-schedule mode: the deployment runs every N s, as K2's every 15 min (0: paused, the lab's default, so
    # that a test's own runs are the only ones). K2's 900 s on its ~94 s cycle is ~270 s on the lab's ~28 s cycle.
    schedule_seconds: int = field(default_factory=lambda: int(_env("SCHEDULE_SECONDS", "0")))
    alert_for: str = field(default_factory=lambda: _env("ALERT_FOR", "4s"))
    # The product's early-warning rules (prometheus/): long enough that a worker restart (a few seconds) fires nothing.
    early_warning_for: str = field(default_factory=lambda: _env("EARLY_WARNING_FOR", "15s"))
    scrape_interval: str = field(default_factory=lambda: _env("SCRAPE_INTERVAL", "2s"))
    jdbc_jar: str = "/opt/spark/jars/clickhouse-jdbc-0.4.6-all.jar"
    # The conformance lane (docs/fidelity.md): a K2 checkout whose own job, watermark code and DDLs the lab runs,
    # read from there at run time. Empty: the twin's own rewrite.
    k2_source: str = field(default_factory=lambda: os.environ.get("K2_SOURCE", ""))
    state_dir: Path = field(default_factory=lambda: Path(_env("STATE_DIR", str(DEFAULT_STATE_DIR))))

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", self.prefix) or (
                self.prefix != DEFAULT_PREFIX and self.instance == "true"):
            raise ValueError(f"K2_LAB_PREFIX {self.prefix!r}: lower-case letters, digits, '_', '.' or '-' (e.g. 'k2b-')")
        if self.k2_source and not (Path(self.k2_source) / K2_JOB).is_file():
            raise ValueError(f"K2_SOURCE {self.k2_source!r} is not a k2-market-data-platform checkout (no {K2_JOB})")
        if self.k2_source and not self.is_main:
            raise ValueError("K2_SOURCE: the conformance lane runs on the main lab only (K2's flow names "
                             "k2-spark-iceberg)")

    @property
    def k2_checkout(self) -> Path | None:
        """The K2 checkout of the conformance lane, or None for the twin."""
        return Path(self.k2_source).resolve() if self.k2_source else None

    def container(self, service: str) -> str:
        """The container of `service` (its alias on the lab network: clickhouse, prefect-worker, spark-iceberg...)."""
        return f"{self.prefix}{service}"

    def volume(self, name: str) -> str:
        return f"{self.prefix}lab-{name}"

    @property
    def instance(self) -> str:
        """This lab's value of LAB_LABEL on its containers, network and volumes ("true" for the main lab, as before):
        `labctl down` removes what carries its own value only, so one twin's down never touches another."""
        return "true" if self.prefix == DEFAULT_PREFIX else self.prefix.rstrip("-._")

    @property
    def labels(self) -> dict[str, str]:
        return {LAB_LABEL: self.instance}

    @property
    def is_main(self) -> bool:
        return self.prefix == DEFAULT_PREFIX

    @property
    def venv(self) -> Path:
        return Path(sys.prefix)

    @property
    def python_base_prefix(self) -> Path:
        # A venv made from pyenv's Python links to that Python's prefix: mount it too.
        return Path(sys.base_prefix)

    @property
    def warehouse_dir(self) -> Path:
        return self.state_dir / "warehouse"

    @property
    def flows_dir(self) -> Path:
        """The Docker host's flow files (K2: docker/offload/flows), rendered from lab/services/flows."""
        return self.state_dir / "flows"

    @property
    def faults_dir(self) -> Path:
        return self.state_dir / "faults"

    @property
    def spark_cds_dir(self) -> Path:
        """The Spark driver's class-data archive (lab/services/spark/spark-defaults.conf)."""
        return self.state_dir / "spark-cds"
