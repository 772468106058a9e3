"""Lab configuration: K2's names and ports by default, every value overridable by a K2_LAB_* env var."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LAB_LABEL = "io.k2-lab.managed"


def _env(name: str, default: str) -> str:
    return os.environ.get(f"K2_LAB_{name}", default)


@dataclass(frozen=True)
class LabConfig:
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
    # Throwaway lab credentials (never used outside the lab).
    db_name: str = "prefect"
    db_user: str = "prefect"
    db_password: str = field(default_factory=lambda: _env("DB_PASSWORD", "k2-lab-prefect"))
    clickhouse_password: str = field(default_factory=lambda: _env("CLICKHOUSE_PASSWORD", "k2-lab-clickhouse"))
    # "state" = K2's real one-row-per-table schema; "history" = the runbook's append-only layout.
    watermark_layout: str = field(default_factory=lambda: _env("WATERMARK_LAYOUT", "state"))
    # Layers whose tables the flow offloads (bronze always; silver/gold selectable).
    layers: tuple[str, ...] = field(default_factory=lambda: tuple(_env("LAYERS", "bronze").split(",")))
    feed_rows_per_second: int = field(default_factory=lambda: int(_env("FEED_ROWS_PER_SECOND", "20")))
    backfill_minutes: int = field(default_factory=lambda: int(_env("BACKFILL_MINUTES", "60")))
    # K2: task timeout 600 s, 2 retries 30 s apart, subflow retry after 300 s. The lab shortens them.
    task_timeout_seconds: int = field(default_factory=lambda: int(_env("TASK_TIMEOUT_SECONDS", "30")))
    task_retry_delay_seconds: int = field(default_factory=lambda: int(_env("TASK_RETRY_DELAY_SECONDS", "1")))
    subflow_retries: int = field(default_factory=lambda: int(_env("SUBFLOW_RETRIES", "0")))
    alert_for: str = field(default_factory=lambda: _env("ALERT_FOR", "4s"))
    scrape_interval: str = field(default_factory=lambda: _env("SCRAPE_INTERVAL", "2s"))
    jdbc_jar: str = "/opt/spark/jars/clickhouse-jdbc-0.4.6-all.jar"
    state_dir: Path = field(default_factory=lambda: Path(_env("STATE_DIR", str(PROJECT_ROOT / ".lab"))))

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
