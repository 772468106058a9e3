"""Small clients the lab uses from the host: PostgreSQL, ClickHouse and Prefect's REST API on 127.0.0.1."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from config import LabConfig

DEPLOYMENT = "iceberg-offload-main/iceberg-offload-15min"
FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
K2_CRON = "*/15 * * * *"  # K2's deployment schedule (lab/services/prefect/deploy.py)


def pg(cfg: LabConfig):
    import psycopg2
    return psycopg2.connect(host="127.0.0.1", port=cfg.port_postgres, dbname=cfg.db_name, user=cfg.db_user,
                            password=cfg.db_password, connect_timeout=3)


def clickhouse(cfg: LabConfig, database: str = "k2"):
    import clickhouse_connect
    return clickhouse_connect.get_client(host="127.0.0.1", port=cfg.port_clickhouse, username="default",
                                         password=cfg.clickhouse_password, database=database, connect_timeout=3,
                                         send_receive_timeout=120)


def http_json(url: str, body: dict | None = None, timeout: float = 10.0, method: str | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data is not None else "GET"),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - 127.0.0.1 only
        return json.loads(resp.read() or b"null")


class Prefect:
    def __init__(self, cfg: LabConfig) -> None:
        self.api = f"http://127.0.0.1:{cfg.port_prefect}/api"

    def healthy(self) -> bool:
        return http_json(f"{self.api}/health", timeout=2) is True

    def deployment(self) -> dict:
        return http_json(f"{self.api}/deployments/name/{DEPLOYMENT}")

    def trigger(self, tables: list[str] | None = None) -> str:
        params = {"tables": tables} if tables else {}
        run = http_json(f"{self.api}/deployments/{self.deployment()['id']}/create_flow_run", {"parameters": params})
        return run["id"]

    def set_schedule(self, seconds: int, first_in: float = 0) -> str:
        """The live-schedule mode: the deployment's schedule active every `seconds` s, its first run `first_in` s from
        now (K2: every 900 s, on a ~94 s cycle), or paused for 0 (the lab's default; pausing deletes the runs it had
        scheduled). Prefect's scheduler creates the runs within seconds of the change."""
        deployment = self.deployment()
        base = f"{self.api}/deployments/{deployment['id']}"
        if seconds <= 0:  # paused first, then K2's own cron again (the paused lab's deployment is K2's)
            http_json(f"{base}/pause_deployment", {})
            self._put_schedule(deployment, {"cron": K2_CRON, "timezone": "UTC"})
            return "schedule paused"
        anchor = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + first_in))
        self._put_schedule(deployment, {"interval": seconds, "anchor_date": anchor, "timezone": "UTC"})
        http_json(f"{base}/resume_deployment", {})
        return f"schedule live, every {seconds} s"

    def _put_schedule(self, deployment: dict, schedule: dict) -> None:
        base = f"{self.api}/deployments/{deployment['id']}"
        current = (deployment.get("schedules") or [{}])[0]
        body = {"schedule": schedule, "active": True}
        if current.get("id"):
            http_json(f"{base}/schedules/{current['id']}", body, method="PATCH")
        else:
            http_json(f"{base}/schedules", [body])

    def runs_in_state(self, state_type: str) -> list[dict]:
        return http_json(f"{self.api}/flow_runs/filter", {
            "deployments": {"id": {"any_": [self.deployment()["id"]]}},
            "flow_runs": {"state": {"type": {"any_": [state_type]}}}, "limit": 200})

    def deployment_runs_in_flight(self) -> list[dict]:
        """The deployment's own runs RUNNING or PENDING (a zombie subflow of a crashed run is not one of them)."""
        return self.runs_in_state("RUNNING") + self.runs_in_state("PENDING")

    def runs_since(self, since: str) -> list[dict]:
        """The deployment's runs that started at or after `since` (ISO), oldest first."""
        return http_json(f"{self.api}/flow_runs/filter", {
            "deployments": {"id": {"any_": [self.deployment()["id"]]}},
            "flow_runs": {"start_time": {"after_": since}}, "sort": "START_TIME_ASC", "limit": 200})

    def flow_run(self, run_id: str) -> dict:
        return http_json(f"{self.api}/flow_runs/{run_id}")

    def wait(self, run_id: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            run = self.flow_run(run_id)
            if run["state_type"] in FINAL_STATES or time.monotonic() > deadline:
                return run
            time.sleep(0.5)

    def set_state(self, run_id: str, state_type: str, message: str) -> None:
        http_json(f"{self.api}/flow_runs/{run_id}/set_state",
                  {"state": {"type": state_type, "message": message}, "force": True})

    def delete_flow_run(self, run_id: str) -> None:
        req = urllib.request.Request(f"{self.api}/flow_runs/{run_id}", method="DELETE")
        urllib.request.urlopen(req, timeout=10).read()  # noqa: S310 - 127.0.0.1 only

    def worker_online(self, pool: str = "iceberg-offload") -> bool:
        workers = http_json(f"{self.api}/work_pools/{pool}/workers/filter", {})
        return any(w.get("status") == "ONLINE" for w in workers)

    def run_ids(self) -> set[str]:
        """IDs of the deployment's flow runs (the newest 200)."""
        runs = http_json(f"{self.api}/flow_runs/filter", {"deployments": {"id": {"any_": [self.deployment()["id"]]}},
                                                           "sort": "EXPECTED_START_TIME_DESC", "limit": 200})
        return {r["id"] for r in runs}

    def running_runs(self) -> list[dict]:
        return http_json(f"{self.api}/flow_runs/filter",
                         {"flow_runs": {"state": {"type": {"any_": ["RUNNING", "PENDING"]}}}, "limit": 50})


def prometheus_alerts(cfg: LabConfig, name: str) -> list[dict]:
    data = http_json(f"http://127.0.0.1:{cfg.port_prometheus}/api/v1/alerts", timeout=3)
    return [a for a in data["data"]["alerts"] if a["labels"].get("alertname") == name]


def metric_text(cfg: LabConfig) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{cfg.port_metrics}/metrics", timeout=3) as resp:  # noqa: S310
        return resp.read().decode()


def url_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - 127.0.0.1 only
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False
