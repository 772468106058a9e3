# -*- coding: utf-8 -*-
# Copyright: K2 offload automation contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Documentation shared by the offload modules (ansible.cfg doc_fragment_plugins = doc_fragments), as
community.postgresql's doc_fragments/postgres.py and community.docker's _attributes.py share theirs. The options
mirror module_utils/offload_common.py's argument specs; tests/unit/test_module_docs.py holds every module's
rendered docs to its argument spec. A module may override an entry (its own wins)."""
from __future__ import annotations


def _tables(all_required: bool) -> str:
    optional = "true" if all_required else "false"
    return f"""
options:
  tables:
    description:
      - The offloaded tables, as in K2's C(TABLE_CONFIG) (inventory variable C(k2_tables)), passed as is.
      - {"Every key but C(columns) is required." if all_required else
         "Only O(tables[].source) and O(tables[].timestamp_col) are used and required."}
    type: list
    elements: dict
    required: true
    suboptions:
      source:
        description: ClickHouse source table (also the watermark key).
        type: str
        required: true
      timestamp_col:
        description: The table's time column (the offload cursor).
        type: str
        required: true
      target:
        description: Iceberg table, C(namespace.table).
        type: str
        required: {optional}
      layer:
        description: Medallion layer.
        type: str
        required: {optional}
        choices: [bronze, silver, gold]
      sequence_col:
        description: The table's sequence column.
        type: str
        required: {optional}
      columns:
        description: Offloaded columns (comma-separated), C(*) for all.
        type: str
        default: "*"
"""


class ModuleDocFragment:
    # The watermark database (K2: database prefect on k2-prefect-db): offload_common.postgres_argument_spec().
    POSTGRES = r"""
options:
  login_host:
    description: PostgreSQL host. Falls back to E(PGHOST).
    type: str
    default: 127.0.0.1
  login_port:
    description: PostgreSQL port (K2 publishes 5432; the lab 15432). Falls back to E(PGPORT).
    type: int
    default: 5432
  login_user:
    description: PostgreSQL user (K2's C(PREFECT_DB_USER)). Falls back to E(PGUSER).
    type: str
    default: prefect
  login_password:
    description: Password of O(login_user). Falls back to E(PGPASSWORD). Never returned, also masked in error texts.
    type: str
  login_db:
    description: Database holding C(offload_watermarks) (K2's C(PREFECT_DB_NAME)). Default from E(PGDATABASE).
    type: str
    default: prefect
  connect_timeout:
    description: Seconds to wait for the database connection.
    type: int
    default: 5
requirements:
  - psycopg2 (C(psycopg2-binary)) on the host the module runs on.
"""

    # ClickHouse's HTTP interface (K2: k2-clickhouse:8123, database k2): offload_common.clickhouse_argument_spec().
    CLICKHOUSE = r"""
options:
  clickhouse_host:
    description: ClickHouse host (HTTP interface). Falls back to E(CLICKHOUSE_HOST).
    type: str
    default: 127.0.0.1
  clickhouse_port:
    description: ClickHouse HTTP port. Falls back to E(CLICKHOUSE_PORT).
    type: int
    default: 8123
  clickhouse_user:
    description: ClickHouse user. Falls back to E(CLICKHOUSE_USER).
    type: str
    default: default
  clickhouse_password:
    description: Password of O(clickhouse_user). Falls back to E(CLICKHOUSE_PASSWORD). Never returned, also masked
      in error texts.
    type: str
    default: ""
  clickhouse_database:
    description: Database of the offloaded tables (K2 C(k2)).
    type: str
    default: k2
  connect_timeout:
    description: Seconds to wait for the TCP connection.
    type: int
    default: 5
"""

    # The offloaded tables as K2's TABLE_CONFIG (inventory variable k2_tables): offload_common.tables_argument_spec().
    TABLES = _tables(all_required=True)
    # The same for a module that reads only source and timestamp_col (the other keys optional, k2_tables as is).
    TABLES_READ = _tables(all_required=False)

    # A plain-HTTP JSON API (Prefect, Prometheus): offload_common.http_api_argument_spec(); the module documents
    # its own O(api_url) (default and environment variable differ).
    # module_utils/offload_lock.py heartbeat_argument_spec(): a module that may wait long under the stack's lock.
    LOCK_HEARTBEAT = r"""
options:
  lock_path:
    description:
      - The stack's remediation lock file (library/offload_lock.py) the caller holds. With O(lock_token), the wait
        renews the holder's heartbeat in it every 30 s, so a long wait is never taken for a dead holder.
      - Both unset, nothing is renewed (a run outside a remediation). A lock lost meanwhile is reported in
        RV(lock_heartbeat), never fatal.
    type: path
  lock_token:
    description: The holder's token (C(holder.token) of the lock's O(state=acquired)).
    type: str
"""

    HTTP_API = r"""
options:
  timeout:
    description: Seconds to wait for each HTTP request.
    type: int
    default: 10
  validate_certs:
    description: Verify the server's TLS certificate when O(api_url) is C(https).
    type: bool
    default: true
"""

    # The offload deployment in Prefect 3: offload_prefect_inspect.deployment_argument_spec() beyond HTTP_API.
    PREFECT = r"""
options:
  api_url:
    description:
      - Base URL of Prefect's REST API, ending in C(/api) (K2 publishes the server on port 4200 of the Docker host).
      - If not set, the environment variable E(PREFECT_API_URL) is used.
    type: str
    default: http://127.0.0.1:4200/api
  deployment:
    description: The deployment, as C(flow name/deployment name).
    type: str
    default: iceberg-offload-main/iceberg-offload-15min
  work_pool:
    description: The work pool whose workers run the deployment's flow runs.
    type: str
    default: iceberg-offload
  heartbeat_stale_seconds:
    description:
      - A worker counts as online only if Prefect reports it C(ONLINE) and its last heartbeat is younger than
        this (Prefect workers beat every 30 s by default).
    type: int
    default: 90
"""

    # The watermark keys (source table names) of offload_watermark and offload_watermark_info.
    WATERMARK_TABLES = r"""
options:
  tables:
    description:
      - Source table names (the watermark key, for example C(bronze_trades_binance); not the C(cold.*) name).
        With the inventory's table config (C(k2_tables)), map it to its C(source) attribute (see EXAMPLES).
      - Each must be a plain identifier (letters, digits, underscores, at most 63 characters); anything else
        fails the task before any connection is made.
      - Repeated names are taken once.
    type: list
    elements: str
    required: true
notes:
  - K2's real table has no history; the runbook's Scenario 4 queries (C(max_timestamp), C(sequence_number),
    C(DELETE ... WHERE id NOT IN ...)) fail on it with "column does not exist". RV(layout) tells which world you
    are in before anything acts on the table.
"""

    # A module that only reads (the anchors' INFO_MODULE): the same in check mode, never changes anything.
    INFO_MODULE = r"""
options: {}
attributes:
  check_mode:
    support: full
    details: Read-only; runs the same in check mode.
  diff_mode:
    support: none
  idempotent:
    support: full
"""

    # Pure logic on its inputs (a decision module): no I/O, nothing to change.
    PURE_LOGIC = r"""
options: {}
attributes:
  check_mode:
    support: full
    details: Pure logic; runs the same in check mode.
  diff_mode:
    support: none
  idempotent:
    support: full
"""
