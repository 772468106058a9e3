"""Create the work pool and K2's deployment iceberg-offload-main/iceberg-offload-15min (schedule paused).

Runs inside k2-prefect-worker so that the flow source path is the worker's own /opt/prefect/flows.
"""
from __future__ import annotations

import os
import sys

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists

POOL = os.environ.get("K2_WORK_POOL", "iceberg-offload")


def main() -> None:
    sys.path.insert(0, "/opt/prefect/flows")
    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=POOL, type="process"))
        except ObjectAlreadyExists:
            pass
    cron = os.environ.get("K2_OFFLOAD_CRON", "*/15 * * * *")
    paused = os.environ.get("K2_SCHEDULE_PAUSED", "true") == "true"
    flow.from_source(source="/opt/prefect/flows", entrypoint="iceberg_offload_flow.py:iceberg_offload_main").deploy(
        name="iceberg-offload-15min", work_pool_name=POOL, cron=cron, paused=paused,
        tags=["iceberg", "offload", "lab"], version="3.1.0", ignore_warnings=True)


if __name__ == "__main__":
    main()
