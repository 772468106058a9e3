# -*- coding: utf-8 -*-
# PRIVATE to this project's modules: the client side of ClickHouse's HTTP interface (clickhouse-connect), shared by
# the modules that read ClickHouse (module_utils/offload_clickhouse_inspect.py for offload_clickhouse and the
# diagnosis, library/offload_capacity_info.py). Read-only use: no session
# (the client is then safe to share between threads), every query bounded server-side by max_execution_time.
# Imported as ansible.module_utils.offload_clickhouse_api.
from __future__ import annotations

import traceback

try:
    import clickhouse_connect
    HAS_CLICKHOUSE_CONNECT = True
    CLICKHOUSE_CONNECT_IMPORT_ERROR = None
except ImportError:
    clickhouse_connect = None
    HAS_CLICKHOUSE_CONNECT = False
    CLICKHOUSE_CONNECT_IMPORT_ERROR = traceback.format_exc()


class Inspector:
    """Runs the read-only queries and records them (sql + bound parameters) for the result."""

    def __init__(self, client, query_timeout: int):
        self.client = client
        self.settings = {"max_execution_time": query_timeout}
        self.queries: list[dict] = []

    def rows(self, sql: str, parameters: dict | None = None) -> list[dict]:
        self.queries.append({"sql": sql, "parameters": dict(parameters or {})})
        result = self.client.query(sql, parameters=parameters or None, settings=self.settings)
        return list(result.named_results())

    def scalar(self, sql: str, parameters: dict | None = None):
        rows = self.rows(sql, parameters)
        return next(iter(rows[0].values())) if rows else None


def connect(params: dict):
    """A client from the module's clickhouse_argument_spec() options plus query_timeout (raises the driver's error
    when the server does not answer: the caller reports it as a finding)."""
    return clickhouse_connect.get_client(
        host=params["clickhouse_host"], port=params["clickhouse_port"], username=params["clickhouse_user"],
        password=params["clickhouse_password"] or "", connect_timeout=params["connect_timeout"],
        send_receive_timeout=params["query_timeout"], autogenerate_session_id=False,
        client_name="k2-offload-ansible", query_retries=0)
