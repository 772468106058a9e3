# -*- coding: utf-8 -*-
# PRIVATE to this project's modules: the client of Prefect's REST API (no Prefect client library), shared by the
# modules that read Prefect (library/offload_prefect.py keeps a copy until it imports this one, see the capacity
# report's hand-over notes; library/offload_capacity_info.py). Errors are one line, never a traceback: an answer
# that never came (PrefectUnreachable) is told apart from an HTTP error status (PrefectHTTPError).
# Imported as ansible.module_utils.offload_prefect_api.
from __future__ import annotations

import json
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from http.client import HTTPException
from urllib.error import HTTPError, URLError

from ansible.module_utils.urls import ConnectionError as UrlsConnectionError
from ansible.module_utils.urls import open_url

try:
    from ansible.module_utils.offload_common import first_line
except ImportError:  # unit tests import module_utils/ directly
    from offload_common import first_line


class PrefectUnreachable(Exception):
    """No HTTP answer at all (connection refused, DNS, timeout, TLS)."""


class PrefectHTTPError(Exception):
    """The server answered with an HTTP error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def failure(base: str, exc: PrefectUnreachable | PrefectHTTPError) -> str:
    """One line for a request to the Prefect API at `base` that got no answer or an error answer."""
    what = "is unreachable" if isinstance(exc, PrefectUnreachable) else f"answered HTTP {exc.status}"
    return f"Prefect API {base} {what}: {exc}"


class PrefectAPI:
    """One Prefect API base URL; every call bounded by `timeout`. Safe to share between threads (one HTTP
    connection per call); `server_now` follows the server's Date header."""

    def __init__(self, base: str, timeout: int, validate_certs: bool, agent: str = "ansible-offload_prefect") -> None:
        self.base = base.rstrip("/")
        self.timeout = timeout
        self.validate_certs = validate_certs
        self.agent = agent
        self.server_now = None

    def call(self, method: str, path: str, body=None):
        url = self.base + path
        data = json.dumps(body).encode() if body is not None else None
        try:
            resp = open_url(url, data=data, method=method, timeout=self.timeout, validate_certs=self.validate_certs,
                            headers={"Content-Type": "application/json", "Accept": "application/json"},
                            http_agent=self.agent, use_netrc=False)
            raw = resp.read()
            self._note_date(resp.headers.get("Date"))
        except HTTPError as exc:
            raise PrefectHTTPError(exc.code, f"{method} {url} answered HTTP {exc.code}: {_detail(exc)}") from None
        except (TimeoutError, URLError, UrlsConnectionError, HTTPException, OSError, ValueError) as exc:
            raise PrefectUnreachable(f"{method} {url} got no answer: {_reason(exc)}") from None
        try:
            return json.loads(raw or b"null")
        except ValueError:
            raise PrefectHTTPError(200, f"{method} {url} did not answer JSON") from None

    def _note_date(self, header) -> None:
        if not header:
            return
        try:
            when = parsedate_to_datetime(header)
        except (TypeError, ValueError, IndexError):
            return
        if when is not None:
            self.server_now = when if when.tzinfo else when.replace(tzinfo=timezone.utc)

    def now(self) -> datetime:
        return self.server_now or datetime.now(timezone.utc)

    def get(self, path: str):
        return self.call("GET", path)

    def post(self, path: str, body: dict):
        return self.call("POST", path, body)


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return first_line(reason) if isinstance(reason, BaseException) else str(reason or first_line(exc))


def _detail(exc: HTTPError) -> str:
    try:
        body = exc.read()
        detail = json.loads(body).get("detail")
        if detail:
            return first_line(Exception(str(detail)))
    except (ValueError, AttributeError, OSError, TypeError):
        pass
    return str(exc.reason or "error")
