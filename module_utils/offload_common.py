# -*- coding: utf-8 -*-
# PRIVATE to this project's modules (library/offload_*): shared argument specs, input validation and
# result conversion. Imported as ansible.module_utils.offload_common.
from __future__ import annotations

import datetime
import decimal
import os
import re
import tempfile
import uuid
from urllib.parse import urlsplit

from ansible.module_utils.basic import env_fallback

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class ProbeError(Exception):
    """A read-only probe's input or answer that ends the probe; its message is the one-line finding (a module
    fails with it, the diagnosis reports the probe blind with it)."""


class ProbeReporter:
    """What a probe needs from its caller: its options and a place for warnings. An AnsibleModule is one; the
    diagnosis module (offload_diagnosis) gives each probe run in its threads one of these."""

    def __init__(self, params: dict) -> None:
        self.params = params
        self.warnings: list[str] = []

    def warn(self, warning: str) -> None:
        self.warnings.append(warning)


def postgres_argument_spec() -> dict:
    """Connection to the watermark database (K2: database prefect on k2-prefect-db)."""
    return {
        "login_host": {"type": "str", "default": "127.0.0.1", "fallback": (env_fallback, ["PGHOST"])},
        "login_port": {"type": "int", "default": 5432, "fallback": (env_fallback, ["PGPORT"])},
        "login_user": {"type": "str", "default": "prefect", "fallback": (env_fallback, ["PGUSER"])},
        "login_password": {"type": "str", "no_log": True, "fallback": (env_fallback, ["PGPASSWORD"])},
        "login_db": {"type": "str", "default": "prefect", "fallback": (env_fallback, ["PGDATABASE"])},
        "connect_timeout": {"type": "int", "default": 5},
    }


def clickhouse_argument_spec() -> dict:
    """Connection to ClickHouse's HTTP interface (K2: k2-clickhouse:8123, database k2)."""
    return {
        "clickhouse_host": {"type": "str", "default": "127.0.0.1", "fallback": (env_fallback, ["CLICKHOUSE_HOST"])},
        "clickhouse_port": {"type": "int", "default": 8123, "fallback": (env_fallback, ["CLICKHOUSE_PORT"])},
        "clickhouse_user": {"type": "str", "default": "default", "fallback": (env_fallback, ["CLICKHOUSE_USER"])},
        "clickhouse_password": {"type": "str", "no_log": True, "default": "",
                                "fallback": (env_fallback, ["CLICKHOUSE_PASSWORD"])},
        "clickhouse_database": {"type": "str", "default": "k2"},
        "connect_timeout": {"type": "int", "default": 5},
    }


def http_api_argument_spec(default_url: str, env: str) -> dict:
    """A plain-HTTP JSON API (Prefect, Prometheus)."""
    return {
        "api_url": {"type": "str", "default": default_url, "fallback": (env_fallback, [env])},
        "timeout": {"type": "int", "default": 10},
        "validate_certs": {"type": "bool", "default": True},
    }


def tables_argument_spec() -> dict:
    """The offloaded tables, as in K2's TABLE_CONFIG (inventory variable k2_tables)."""
    return {"tables": {"type": "list", "elements": "dict", "required": True, "options": {
        "source": {"type": "str", "required": True},
        "target": {"type": "str", "required": True},
        "layer": {"type": "str", "required": True, "choices": ["bronze", "silver", "gold"]},
        "timestamp_col": {"type": "str", "required": True},
        "sequence_col": {"type": "str", "required": True},
        "columns": {"type": "str", "default": "*"},
    }}}


def invalid_identifiers(names) -> list[str]:
    """Names that are not plain SQL identifiers (they are never interpolated into SQL)."""
    return [n for n in names if not isinstance(n, str) or not IDENTIFIER.fullmatch(n)]


def check_tables(module, tables: list[dict]) -> None:
    """Fail with one clear line if any table or column name is not a plain identifier."""
    names = []
    for t in tables:
        names += [t["source"], t["timestamp_col"], t["sequence_col"], *t["target"].split(".", 1)]
        if t.get("columns", "*") != "*":
            names += t["columns"].split(",")
    bad = invalid_identifiers(names)
    if bad:
        module.fail_json(msg=f"Invalid table or column name(s) {', '.join(repr(b) for b in bad)}: "
                             "only letters, digits and underscores are accepted.")


def to_json_safe(value):
    """Convert driver types (datetime, Decimal, UUID, bytes) recursively into JSON-serialisable values."""
    if isinstance(value, dict):
        return {str(k): to_json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_safe(v) for v in value]
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


_FRACTION = re.compile(r"\.(\d+)")


def parse_utc(value) -> datetime.datetime | None:
    """An ISO-8601 timestamp (str, or datetime) as an aware UTC datetime; None when it is not one. 'Z' and any
    number of fraction digits are accepted (Prefect writes 7); naive values are taken as UTC (K2: UTC everywhere)."""
    if isinstance(value, datetime.datetime):
        parsed = value
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        if text[-1] in "zZ":
            text = text[:-1] + "+00:00"
        text = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], text, count=1)
        try:
            parsed = datetime.datetime.fromisoformat(text)
        except ValueError:
            return None
    else:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.astimezone(datetime.timezone.utc)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def api_url_problem(url) -> str | None:
    """Why url is not usable as an HTTP API base URL (one line), or None when it is."""
    if not isinstance(url, str) or not url.strip():
        return "is empty"
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        return f"is malformed ({exc})"
    if parts.scheme not in ("http", "https"):
        return "must start with http:// or https://"
    if not parts.hostname:
        return "has no host"
    if port == 0:
        return "has port 0"
    if parts.query or parts.fragment:
        return "must not carry a query string or fragment"
    if any(c.isspace() for c in url.strip()):
        return "contains whitespace"
    return None


def replace_file(path: str, text: str) -> None:
    """Write `text` to `path` atomically, mode 0600: a temporary file beside it, synced, then renamed over it, so that
    a reader sees the old content or the new, never half of it. Raises OSError (the caller names the object)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=os.path.dirname(path) or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
