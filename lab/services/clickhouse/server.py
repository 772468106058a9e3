"""ClickHouse HTTP interface (port 8123 protocol) served from the embedded chdb engine.

The lab has no clickhouse-server binary, so this process embeds ClickHouse itself
(PyPI ``chdb-core``, module ``chdb``, engine 26.9) and speaks enough of the HTTP
interface for clickhouse-connect: the ``query`` param and/or POST body (concatenated
with a newline, as ClickHouse does), ``database``, ``default_format`` (a FORMAT
clause in the SQL wins), ``session_id``, ``param_*`` bindings (handed to the engine,
which parses them exactly like clickhouse-server: no text substitution), any other
param as a query setting, gzip/deflate/lz4/zstd request bodies, streamed
``INSERT ... FORMAT <fmt>`` bodies, ClickHouse-shaped errors and X-ClickHouse-* headers.

Engine facts this design rests on (measured on chdb-core 26.9.0):
- A process hosts one engine bound to one data path. It stays up while any of its
  connections is open, so an anchor connection is held for the process lifetime.
- Queries on different connections run in parallel (the GIL is released), and every
  running query shows in ``system.processes`` seen from any other connection.
- A connection must not be used by two threads at once. A session owns one connection
  behind a lock (a second concurrent request gets SESSION_IS_LOCKED, like ClickHouse);
  a request without session_id gets a fresh connection (about 0.4 ms), closed after.

Differences from clickhouse-server:
- ``system.processes.query_id`` is the engine's own id, not the X-ClickHouse-Query-Id
  the client sent (the engine cannot take a query id), so KILL QUERY must match
  on other columns (query text, user, elapsed).
- Results are buffered and sent whole with Content-Length, never compressed (clients
  cope: Content-Encoding is optional). No ``compress=1``/``decompress=1`` (ClickHouse's
  checksummed block format), no external data tables, one user: ``default``.
- In a session, the ``database`` param switches the session's database (USE). Settings
  passed as params apply to their own query only, as in ClickHouse, except on a request
  whose statement is a SET: there they stay in the session along with the SET.

Lab fault hooks (not ClickHouse; used by the test lab to emulate failures; no auth):
- ``POST /lab/ballast?mb=N``  hold N MiB of filled memory (replaces the previous
  ballast; 0 frees it). While ballast is held and LAB_MEMORY_LIMIT_BYTES is set, queries
  fail with MEMORY_LIMIT_EXCEEDED (241) once RSS exceeds 90% of that limit.
- ``POST /lab/crash``  log a ClickHouse-like fatal signal report, exit with code 139.
- ``POST /lab/slow?seconds=N``  every later SELECT first sleeps N s inside the engine
  (so it is a running, killable query in system.processes); 0 clears.

Environment: CLICKHOUSE_HTTP_HOST (0.0.0.0), CLICKHOUSE_HTTP_PORT (8123),
CLICKHOUSE_DATA_DIR (/var/lib/clickhouse), CLICKHOUSE_PASSWORD (empty: no check),
CLICKHOUSE_MAX_MEMORY_BYTES (engine max_server_memory_usage), LAB_MEMORY_LIMIT_BYTES.

Run: python lab/services/clickhouse/server.py   (SIGTERM exits 0)
"""

from __future__ import annotations

import base64
import hmac
import http
import json
import os
import re
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from email.parser import BytesParser
from email.policy import HTTP as HTTP_POLICY
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import lz4.frame
import zstandard
from chdb import _chdb, engine_version

VERSION = engine_version
DISPLAY_NAME = socket.gethostname()
TIMEZONE = "UTC"
# TTL deletes happen in merges; ClickHouse's default waits 4 h between TTL merges of a
# table, far too long for a lab that checks retention, so merges are allowed every 5 s.
MERGE_WITH_TTL_TIMEOUT_S = 5
SESSION_TIMEOUT_S, MAX_SESSION_TIMEOUT_S = 60, 3600
READ_PIECE = 1 << 20
MAX_INSERT_HEADER = 1 << 20  # bytes searched for `INSERT ... FORMAT <fmt>` before the data

# Params the HTTP layer consumes itself; every other param is a query setting.
HTTP_PARAMS = frozenset({
    "query", "database", "default_format", "session_id", "session_timeout", "session_check",
    "close_session", "compress", "decompress", "user", "password", "quota_key", "query_id",
    "stacktrace", "role", "buffer_size", "wait_end_of_query", "client_protocol_version",
    # Settings that only steer clickhouse-server's HTTP transport.
    "send_progress_in_http_headers", "http_headers_progress_interval_ms",
    "enable_http_compression", "http_zlib_compression_level",
    "cancel_http_readonly_queries_on_client_close", "http_response_buffer_size",
    "http_wait_end_of_query", "http_native_compression_disable_checksumming_on_decompress",
})

# ClickHouse's exceptionCodeToHTTPStatus, keyed by error name; anything else is 500.
_STATUS_BY_ERROR = {
    401: {"REQUIRED_PASSWORD"},
    403: {"UNKNOWN_USER", "WRONG_PASSWORD", "AUTHENTICATION_FAILED", "SET_NON_GRANTED_ROLE",
          "ACCESS_DENIED"},
    400: {"BAD_ARGUMENTS", "CANNOT_COMPILE_REGEXP", "CANNOT_PARSE_TEXT",
          "CANNOT_PARSE_ESCAPE_SEQUENCE", "CANNOT_PARSE_QUOTED_STRING", "CANNOT_PARSE_DATE",
          "CANNOT_PARSE_DATETIME", "CANNOT_PARSE_NUMBER", "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING",
          "CANNOT_PARSE_IPV4", "CANNOT_PARSE_IPV6", "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
          "CANNOT_PARSE_UUID", "DUPLICATE_COLUMN", "ILLEGAL_COLUMN", "UNKNOWN_ELEMENT_IN_AST",
          "UNKNOWN_TYPE_OF_AST_NODE", "THERE_IS_NO_COLUMN", "TOO_DEEP_AST", "TOO_BIG_AST",
          "UNEXPECTED_AST_STRUCTURE", "SYNTAX_ERROR", "INCORRECT_DATA", "TYPE_MISMATCH",
          "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE"},
    404: {"UNKNOWN_TABLE", "UNKNOWN_FUNCTION", "UNKNOWN_IDENTIFIER", "UNKNOWN_TYPE",
          "UNKNOWN_STORAGE", "UNKNOWN_DATABASE", "UNKNOWN_SETTING",
          "UNKNOWN_DIRECTION_OF_SORTING", "UNKNOWN_AGGREGATE_FUNCTION", "UNKNOWN_FORMAT",
          "UNKNOWN_DATABASE_ENGINE", "UNKNOWN_TYPE_OF_QUERY", "UNKNOWN_ROLE"},
    413: {"QUERY_IS_TOO_LARGE"},
    501: {"NOT_IMPLEMENTED"},
    503: {"SOCKET_TIMEOUT", "CANNOT_OPEN_FILE", "CANNOT_SCHEDULE_TASK"},
    411: {"HTTP_LENGTH_REQUIRED"},
    408: {"TIMEOUT_EXCEEDED"},
    415: {"UNSUPPORTED_MEDIA_TYPE"},
}
HTTP_STATUS = {name: status for status, names in _STATUS_BY_ERROR.items() for name in names}

_log_lock = threading.Lock()


def log(level: str, source: str, message: str, query_id: str = "") -> None:
    """One ClickHouse-style log line on stderr (`docker logs ... | grep -i error` finds <Error>)."""
    stamp = datetime.now().strftime("%Y.%m.%d %H:%M:%S.%f")
    line = f"{stamp} [ {threading.get_native_id()} ] {{{query_id}}} <{level}> {source}: {message}\n"
    with _log_lock:
        sys.stderr.write(line)
        sys.stderr.flush()


def _one_line(text: bytes | str, limit: int = 200) -> str:
    if isinstance(text, bytes):
        text = text[: limit * 4].decode("utf-8", "replace")
    return " ".join(text.split())[:limit]


class ClickHouseError(Exception):
    """An exception carrying ClickHouse's text: `Code: N. DB::Exception: <msg>. (NAME)`."""

    _ENGINE_TEXT = re.compile(r"Code: (\d+)\. DB::Exception: .*\((\w+)\)", re.S)
    _VERSION_SUFFIX = re.compile(r"\s*\(version [^()]*(?:\([^()]*\))?\)\s*$")

    def __init__(self, code: int, name: str, text: str):
        super().__init__(text)
        self.code, self.name, self.text = code, name, text

    @classmethod
    def make(cls, code: int, name: str, message: str) -> ClickHouseError:
        return cls(code, name, f"Code: {code}. DB::Exception: {message}. ({name})")

    @classmethod
    def from_engine(cls, exc: Exception) -> ClickHouseError:
        # Some engine errors already end with "(version X)"; the HTTP body adds its own.
        text = cls._VERSION_SUFFIX.sub("", str(exc))
        match = cls._ENGINE_TEXT.match(text)
        if match is None:
            return cls.make(1001, "STD_EXCEPTION", text)
        return cls(int(match[1]), match[2], text)

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.name, 500)

    def body(self) -> bytes:
        return f"{self.text} (version {VERSION} (official build))\n".encode()


def auth_error(user: str) -> ClickHouseError:
    return ClickHouseError.make(
        516, "AUTHENTICATION_FAILED",
        f"{user}: Authentication failed: password is incorrect, "
        "or there is no user with such name")


# --- request bodies -----------------------------------------------------------------

_DECODERS = {
    "gzip": lambda: zlib.decompressobj(wbits=47),  # 47: gzip or zlib header, auto-detected
    "x-gzip": lambda: zlib.decompressobj(wbits=47),
    "deflate": lambda: zlib.decompressobj(wbits=47),
    "lz4": lz4.frame.LZ4FrameDecompressor,
    "zstd": lambda: zstandard.ZstdDecompressor().decompressobj(),
}


def _decode_frames(pieces: Iterator[bytes], new_decoder) -> Iterator[bytes]:
    """Decompress a stream of concatenated frames (gzip members).

    clickhouse-connect compresses every insert block as its own LZ4/zstd frame; a
    decoder stops at the end of its frame, so a fresh one takes over the rest.
    """
    decoder = new_decoder()
    for data in pieces:
        while data:
            try:
                out = decoder.decompress(data)
            except Exception as exc:  # noqa: BLE001 - each codec raises its own error type
                raise ClickHouseError.make(271, "CANNOT_DECOMPRESS", f"Cannot decompress request body: {exc}") from None
            if out:
                yield out
            if not decoder.eof:
                break
            data = decoder.unused_data
            decoder = new_decoder()


class RequestBody:
    """The request body, de-chunked and decompressed, read once and incrementally."""

    def __init__(self, rfile, headers):
        self._rfile = rfile
        self._chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        self._remaining = int(headers.get("Content-Length") or 0)
        self._raw_pieces = self._raw()
        encoding = headers.get("Content-Encoding", "").strip().lower()
        if encoding in ("", "identity"):
            self._pieces = self._raw_pieces
        elif encoding in _DECODERS:
            self._pieces = _decode_frames(self._raw_pieces, _DECODERS[encoding])
        else:
            self._pieces = None
            self.error = ClickHouseError.make(48, "NOT_IMPLEMENTED", f"Unsupported Content-Encoding: {encoding}")

    def _raw(self) -> Iterator[bytes]:
        if self._chunked:
            while size := int(self._rfile.readline(1024).split(b";")[0].strip() or b"0", 16):
                yield from self._read(size)
                self._rfile.readline(1024)  # CRLF closing the chunk
            while self._rfile.readline(1024).strip():  # trailer headers
                pass
        else:
            yield from self._read(self._remaining)

    def _read(self, size: int) -> Iterator[bytes]:
        while size:
            piece = self._rfile.read(min(size, READ_PIECE))
            if not piece:
                raise ConnectionError("client closed the connection in the middle of the body")
            size -= len(piece)
            yield piece

    def pieces(self) -> Iterator[bytes]:
        if self._pieces is None:
            raise self.error
        return self._pieces

    def read_all(self) -> bytes:
        return b"".join(self.pieces())

    def drain(self) -> None:
        for _ in self._raw_pieces:
            pass


def parse_form(body: bytes, content_type: str) -> dict[str, str]:
    """multipart/form-data fields (clickhouse-connect sends large bind params this way)."""
    message = BytesParser(policy=HTTP_POLICY).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    fields = {}
    for part in message.iter_parts():
        if part.get_filename():
            raise ClickHouseError.make(48, "NOT_IMPLEMENTED", "External data tables are not supported by this server")
        name = part.get_param("name", header="content-disposition")
        fields[name] = part.get_payload(decode=True).decode("utf-8", "replace")
    return fields


# --- SQL shape ----------------------------------------------------------------------

_SQL_TOKEN = re.compile(rb"""
    (?P<skip>\s+|--[^\n]*\n|/\*.*?\*/)
  | (?P<quoted>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*"|`(?:[^`\\]|\\.|``)*`)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<open>[(\[])
  | (?P<close>[)\]])
  | (?P<other>[^'"`/-]|/(?!\*)|-(?!-))
""", re.X | re.S)
# After these a word is a name (`INSERT INTO format FORMAT CSV`), not a keyword.
_NAME_FOLLOWS = (b"INTO", b"TABLE", b"FUNCTION", b".")
_NEED_MORE = object()
_TRAILING_FORMAT = re.compile(rb"\bFORMAT\s+(\w+)\s*;?\s*$", re.I)


def first_keyword(sql: bytes) -> bytes:
    for match in _SQL_TOKEN.finditer(sql):
        if match.lastgroup == "word":
            return match.group().upper()
        if match.lastgroup not in ("skip", "open"):
            break
    return b""


def split_insert(buf: bytes, final: bool):
    """Split `INSERT ... FORMAT <fmt>` from the data that follows it.

    Returns (statement, format, data offset); None for any other statement (it runs as
    one query, e.g. INSERT ... VALUES / SELECT); _NEED_MORE when `buf` ends before the
    answer is known and more body may come (`final` says none will).
    """
    pos, depth, prev, format_at = 0, 0, b"", None
    while pos < len(buf):
        match = _SQL_TOKEN.match(buf, pos)
        if match is None:  # unterminated quote or comment
            return None if final else _NEED_MORE
        kind, pos = match.lastgroup, match.end()
        if pos == len(buf) and not final and kind in ("skip", "word"):
            return _NEED_MORE  # the token may continue in the next piece
        if kind == "skip":
            continue
        token = match.group().upper()
        if format_at is not None:
            if kind != "word":
                return None
            # ClickHouse: data starts after spaces and one (CR)LF following the format name.
            data = pos
            while data < len(buf) and buf[data] in b" \t\f":
                data += 1
            if not final and len(buf) - data < 2:
                return _NEED_MORE
            data += buf.startswith(b"\r", data)
            data += buf.startswith(b"\n", data)
            return buf[:format_at], match.group().decode(), data
        if not prev and token != b"INSERT":
            return None
        if kind == "open":
            depth += 1
        elif kind == "close":
            depth -= 1
        elif depth == 0 and kind == "word" and prev not in _NAME_FOLLOWS:
            if token in (b"VALUES", b"SELECT", b"WITH", b"FROM"):
                return None
            if token == b"FORMAT":
                format_at = match.start()
        prev = token
    return None if final else _NEED_MORE


def quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


_SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_CONTENT_TYPES = (
    ("TabSeparated", "text/tab-separated-values; charset=UTF-8"),
    ("TSV", "text/tab-separated-values; charset=UTF-8"),
    ("CSV", "text/csv; charset=UTF-8"),
    ("JSONEachRow", "application/x-ndjson; charset=UTF-8"),
    ("JSON", "application/json; charset=UTF-8"),
    ("Pretty", "text/plain; charset=UTF-8"),
)


def content_type(fmt: str) -> str:
    for prefix, ctype in _CONTENT_TYPES:
        if fmt.startswith(prefix):
            return ctype
    return "application/octet-stream"


# --- engine -------------------------------------------------------------------------

class Connection:
    """One chdb connection; callers make sure only one thread uses it at a time."""

    def __init__(self, raw):
        self.raw = raw
        self._session_values: dict[str, str] = {}  # setting -> SQL value restoring it
        self._applied: dict[str, str] = {}  # settings params of the previous request

    def run(self, sql, fmt: str = "TabSeparated", params: dict | None = None):
        try:
            return self.raw.query(sql, fmt, params=params or {})
        except RuntimeError as exc:
            raise ClickHouseError.from_engine(exc) from None

    def apply(self, database: str | None, settings: dict[str, str], persistent: bool) -> None:
        """USE the request's database; give its statement exactly the request's settings.

        Settings sent as params last for one query in ClickHouse. A session's connection
        outlives the request, so it remembers each such setting's own session value (read
        once: system.settings costs ~2.6 ms) and what the previous request set, and issues
        only the difference; clickhouse-connect repeats the same settings on every request.
        """
        if database:
            self.run(f"USE {quote_identifier(database)}")
        for name in settings:
            if not _SETTING_NAME.fullmatch(name):
                raise ClickHouseError.make(115, "UNKNOWN_SETTING", f"Unknown setting '{name}'")
        if persistent:
            unread = [name for name in settings if name not in self._session_values]
            if unread:
                self._read_session_values(unread)
            changes = {name: quote_string(value) for name, value in settings.items()
                       if self._applied.get(name) != value}
            changes.update({name: self._session_values[name] for name in self._applied if name not in settings})
        else:
            changes = {name: quote_string(value) for name, value in settings.items()}
        if changes:
            self.run("SET " + ", ".join(f"{name} = {value}" for name, value in changes.items()))
        self._applied = dict(settings)

    def _read_session_values(self, names: list[str]) -> None:
        listed = ", ".join(quote_string(name) for name in names)
        rows = self.run(f"SELECT name, value, changed FROM system.settings WHERE name IN ({listed})",
                        "JSONCompactEachRow").bytes().splitlines()
        for name, value, changed in map(json.loads, rows):
            self._session_values[name] = quote_string(value) if changed else "DEFAULT"
        for name in names:
            if name not in self._session_values:
                raise ClickHouseError.make(115, "UNKNOWN_SETTING", f"Unknown setting '{name}'")

    def forget_settings(self) -> None:
        """After a SET statement the session's own values may differ: read them again when needed.

        (The settings params of that one request stay in the session, unlike ClickHouse.)
        """
        self._session_values.clear()
        self._applied = {}

    def insert(self, statement: bytes, fmt: str, pieces: Iterator[bytes]):
        try:
            handle = self.raw.send_insert(statement, fmt)
        except RuntimeError as exc:
            raise ClickHouseError.from_engine(exc) from None
        try:
            for piece in pieces:
                self.raw.insert_append(handle, piece)
            return self.raw.insert_done(handle)
        except BaseException as exc:
            try:
                self.raw.insert_cancel(handle)
            except RuntimeError:
                pass  # the engine already dropped the failed insert
            if isinstance(exc, RuntimeError):
                raise ClickHouseError.from_engine(exc) from None
            raise

    def close(self) -> None:
        self.raw.close()


class Session:
    def __init__(self, conn: Connection, timeout: float):
        self.conn, self.timeout = conn, timeout
        self.lock = threading.Lock()
        self.last_used = time.monotonic()


class Engine:
    """The embedded engine: the anchor connection plus sessions and fresh connections."""

    def __init__(self, data_dir: str, max_memory_bytes: str | None):
        os.makedirs(data_dir, exist_ok=True)
        memory = (f"<max_server_memory_usage>{int(max_memory_bytes)}</max_server_memory_usage>"
                  if max_memory_bytes else "")
        self.path = f"file:{os.path.abspath(data_dir)}"
        # The engine reads its config file once, at start-up.
        with tempfile.NamedTemporaryFile("w", prefix="clickhouse-front-", suffix=".xml") as config:
            config.write(
                f"<clickhouse><timezone>{TIMEZONE}</timezone>{memory}"
                f"<merge_tree><merge_with_ttl_timeout>{MERGE_WITH_TTL_TIMEOUT_S}</merge_with_ttl_timeout></merge_tree>"
                "</clickhouse>\n")
            config.flush()
            self.anchor = Connection(_chdb.connect(f"{self.path}?config-file={config.name}"))
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def connect(self) -> Connection:
        try:
            return Connection(_chdb.connect(self.path))
        except RuntimeError as exc:
            raise ClickHouseError.from_engine(exc) from None

    @contextmanager
    def connection(self, session_id: str | None, timeout: float = SESSION_TIMEOUT_S,
                   check: bool = False, close: bool = False):
        """Yield (connection, is_session) for one request."""
        if not session_id:
            conn = self.connect()
            try:
                yield conn, False
            finally:
                conn.close()
            return
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                if check:
                    raise ClickHouseError.make(372, "SESSION_NOT_FOUND", f"Session {session_id} not found")
                session = self._sessions[session_id] = Session(self.connect(), timeout)
            if not session.lock.acquire(blocking=False):
                raise ClickHouseError.make(373, "SESSION_IS_LOCKED",
                                           f"Session {session_id} is locked by a concurrent client")
            session.timeout = timeout
        try:
            yield session.conn, True
        finally:
            session.last_used = time.monotonic()
            if close:
                with self._lock:
                    self._sessions.pop(session_id, None)
                session.conn.close()
            session.lock.release()

    def expire_sessions(self) -> None:
        now = time.monotonic()
        with self._lock:
            for session_id, session in list(self._sessions.items()):
                if now - session.last_used > session.timeout and session.lock.acquire(blocking=False):
                    del self._sessions[session_id]
                    session.conn.close()
                    session.lock.release()

    def close(self) -> None:
        """Close idle connections; a connection still running a query keeps the engine up."""
        with self._lock:
            for session in self._sessions.values():
                if session.lock.acquire(blocking=False):
                    session.conn.close()
            self._sessions.clear()
        self.anchor.close()


# --- lab fault hooks ----------------------------------------------------------------

def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def readable_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.2f} {unit}"
        size /= 1024


class LabFaults:
    """State of the lab fault hooks (see the module docstring)."""

    def __init__(self, memory_limit_bytes: str | None):
        self.memory_limit = int(memory_limit_bytes) if memory_limit_bytes else 0
        self.ballast = bytearray()
        self.slow_seconds = 0.0

    def set_ballast(self, mb: int) -> None:
        self.ballast = bytearray()  # free the old ballast before filling the new one
        # Filled, not zeroed: untouched zero pages would not count in RSS.
        self.ballast = bytearray(b"\xa5") * (mb << 20)

    def check_memory(self) -> None:
        if not self.ballast or not self.memory_limit:
            return
        rss, maximum = rss_bytes(), self.memory_limit * 0.9
        if rss > maximum:
            chunk = 4 << 20
            raise ClickHouseError.make(
                241, "MEMORY_LIMIT_EXCEEDED",
                f"Memory limit (total) exceeded: would use {readable_size(rss + chunk)} "
                f"(attempt to allocate chunk of {chunk} bytes), current RSS: {readable_size(rss)}, "
                f"maximum: {readable_size(maximum)}. OvercommitTracker decision: "
                "Query was selected to stop by OvercommitTracker")

    def slow_query(self, sql: bytes) -> str | None:
        """The engine-side sleep that precedes a SELECT while the slow fault is set."""
        if not self.slow_seconds or first_keyword(sql) not in (b"SELECT", b"WITH"):
            return None
        tag = _one_line(sql, 100).replace("*/", "* /").replace("/*", "/ *")
        rows = max(1, round(self.slow_seconds * 10))
        return (f"/* lab slow-query fault before: {tag} */ SELECT sleepEachRow(0.1) FROM numbers({rows}) "
                "FORMAT Null SETTINGS max_block_size = 1, function_sleep_max_microseconds_per_block = 0")


def fatal_crash_report() -> None:
    thread = threading.get_native_id()
    for line in (
        "########## Short fault info ############",
        f"(version {VERSION} (official build), build id: <none>) (from thread {thread}) "
        "Received signal Segmentation fault (11)",
        "Signal description: Segmentation fault",
        "Address: NULL pointer. Access: read. Address not mapped to object.",
        "Stack trace: <lab crash fault: no real stack>",
        "########################################",
        "Received signal Segmentation fault (11)",
    ):
        log("Fatal", "BaseDaemon", line)


# --- HTTP -------------------------------------------------------------------------------

class Response:
    def __init__(self, status: int = 200, body: bytes = b"", headers: dict | None = None):
        self.status, self.body, self.headers = status, body, headers or {}


class FrontServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address, engine: Engine, faults: LabFaults, password: str):
        self.engine, self.faults, self.password = engine, faults, password
        super().__init__(address, Handler)

    def handle_error(self, request, client_address) -> None:
        log("Error", "HTTPHandler", f"unhandled error serving {client_address[0]}: {sys.exc_info()[1]!r}")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 600  # idle keep-alive connections are closed after this

    server: FrontServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args) -> None:  # noqa: A002 - stdlib signature
        pass  # one line per request is written by _handle

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        started = time.monotonic()
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        query_id = "".join(c for c in params.get("query_id", "") if " " < c < "\x7f") or str(uuid.uuid4())
        self.log_sql = ""
        try:
            self.body = RequestBody(self.rfile, self.headers)
            try:
                response = self._route(url.path, params)
            except ClickHouseError as exc:
                response = self._error(exc, query_id)
            self.body.drain()  # whatever the handler left unread: keeps the connection usable
        except (ConnectionError, TimeoutError) as exc:
            log("Error", "HTTPHandler", f"connection lost: {exc}", query_id)
            self.close_connection = True
            return
        except Exception as exc:  # noqa: BLE001 - a malformed request or a bug; the body may be half read
            self.close_connection = True
            error = ClickHouseError.make(1001, "STD_EXCEPTION", f"{type(exc).__name__}: {exc}")
            response = self._error(error, query_id)
        response.headers.setdefault("X-ClickHouse-Query-Id", query_id)
        self._send(response)
        log("Information", "HTTPHandler",
            f"{self.command} {url.path} {response.status} {(time.monotonic() - started) * 1000:.1f} ms"
            f"{': ' + self.log_sql if self.log_sql else ''}", query_id)

    def _error(self, exc: ClickHouseError, query_id: str) -> Response:
        context = f" (in query: {self.log_sql})" if self.log_sql else ""
        log("Error", "executeQuery", _one_line(exc.text, 2000) + context, query_id)
        return Response(exc.http_status, exc.body(), {"X-ClickHouse-Exception-Code": str(exc.code)})

    def _send(self, response: Response) -> None:
        head = [
            f"HTTP/1.1 {response.status} {http.HTTPStatus(response.status).phrase}",
            f"Date: {self.date_time_string()}",
            "Connection: " + ("Close" if self.close_connection else "Keep-Alive"),
            f"Keep-Alive: timeout={self.timeout}",
            f"Content-Length: {len(response.body)}",
            f"X-ClickHouse-Server-Display-Name: {DISPLAY_NAME}",
            f"X-ClickHouse-Timezone: {TIMEZONE}",
        ]
        response.headers.setdefault("Content-Type", "text/plain; charset=UTF-8")
        head += [f"{name}: {value}" for name, value in response.headers.items()]
        # Headers and body in one write: with small separate writes Nagle + delayed ACK
        # would add ~40 ms per request.
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body)

    def _route(self, path: str, params: dict[str, str]) -> Response:
        if path in ("/ping", "/replicas_status") or (path == "/" and self.command == "GET" and "query" not in params):
            return Response(body=b"Ok.\n")
        if path.startswith("/lab/") and self.command == "POST":
            return self._lab(path, params)
        if path in ("/", "/query"):
            return self._query(params)
        return Response(404, f"There is no handle {path}\n\nUse / or /ping for health checks.\n"
                             "Send queries from your program with POST method or GET /?query=...\n".encode())

    def _lab(self, path: str, params: dict[str, str]) -> Response:
        faults = self.server.faults
        if path == "/lab/ballast":
            faults.set_ballast(int(params.get("mb", "0")))
            log("Warning", "LabFault",
                f"ballast set to {len(faults.ballast) >> 20} MiB, RSS {readable_size(rss_bytes())}")
            return Response(body=f"ballast_mb={len(faults.ballast) >> 20} rss_bytes={rss_bytes()}\n".encode())
        if path == "/lab/slow":
            faults.slow_seconds = max(0.0, float(params.get("seconds", "0")))
            log("Warning", "LabFault", f"every SELECT now sleeps {faults.slow_seconds} s first")
            return Response(body=f"slow_seconds={faults.slow_seconds}\n".encode())
        if path == "/lab/crash":
            self.body.drain()
            self._send(Response(body=b"Crashing.\n"))
            fatal_crash_report()
            os._exit(139)
        return Response(404, f"Unknown lab fault {path}\n".encode())

    def _authenticate(self, params: dict[str, str]) -> None:
        user = self.headers.get("X-ClickHouse-User")
        password = self.headers.get("X-ClickHouse-Key")
        authorization = self.headers.get("Authorization", "")
        if authorization[:6].lower() == "basic ":
            try:
                basic_user, _, basic_password = base64.b64decode(authorization[6:]).decode().partition(":")
            except ValueError:
                raise auth_error("default") from None
            user, password = user or basic_user, basic_password if password is None else password
        user = user or params.get("user") or "default"
        password = params.get("password", "") if password is None else password
        expected = self.server.password
        if user != "default" or (expected and not hmac.compare_digest(password.encode(), expected.encode())):
            raise auth_error(user)

    def _query(self, params: dict[str, str]) -> Response:
        self._authenticate(params)
        if params.get("compress") == "1" or params.get("decompress") == "1":
            raise ClickHouseError.make(48, "NOT_IMPLEMENTED",
                                       "compress/decompress (ClickHouse native HTTP compression) is not supported; "
                                       "use Content-Encoding / Accept-Encoding")
        pieces = self.body.pieces()
        if self.headers.get_content_type() == "multipart/form-data":
            params.update(parse_form(self.body.read_all(), self.headers["Content-Type"]))
            pieces = iter(())
        self.server.faults.check_memory()

        # ClickHouse reads the query param, a newline, then the body as one text.
        buf = (params["query"] + "\n").encode() if params.get("query") else b""
        final = False
        while (split := split_insert(buf, final)) is _NEED_MORE and len(buf) <= MAX_INSERT_HEADER:
            piece = next(pieces, None)
            final = piece is None
            buf += piece or b""
        if split is _NEED_MORE:  # no INSERT ... FORMAT header in the first MiB: one plain query
            split = None

        settings = {name: value for name, value in params.items()
                    if name not in HTTP_PARAMS and not name.startswith("param_")}
        bindings = {name[6:]: value for name, value in params.items() if name.startswith("param_")}
        try:
            timeout = min(float(params.get("session_timeout", SESSION_TIMEOUT_S)), MAX_SESSION_TIMEOUT_S)
        except ValueError:
            raise ClickHouseError.make(36, "BAD_ARGUMENTS", "Invalid session timeout") from None
        with self.server.engine.connection(params.get("session_id"), timeout, params.get("session_check") == "1",
                                           params.get("close_session") == "1") as (conn, in_session):
            conn.apply(params.get("database"), settings, in_session)
            if split is None:
                sql = buf + b"".join(pieces)
                response = self._statement(conn, sql, params.get("default_format") or "TabSeparated", bindings)
                if in_session and first_keyword(sql) == b"SET":
                    conn.forget_settings()
                return response
            statement, fmt, offset = split
            self.log_sql = _one_line(statement) + f" FORMAT {fmt}"
            result = conn.insert(statement, fmt, _prepend(buf[offset:], pieces))
            written = {"written_rows": result.rows_written(), "written_bytes": result.bytes_written(),
                       "result_rows": result.rows_written(), "result_bytes": result.bytes_written()}
            return Response(headers={"X-ClickHouse-Summary": _summary(result, written)})

    def _statement(self, conn: Connection, sql: bytes, default_format: str, bindings: dict[str, str]) -> Response:
        self.log_sql = _one_line(sql)
        if not sql.strip():
            raise ClickHouseError.make(62, "SYNTAX_ERROR", "Empty query")
        shape = conn.raw.classify_query(sql)
        if shape["statement_count"] > 1:
            raise ClickHouseError.make(62, "SYNTAX_ERROR", "Syntax error (Multi-statements are not allowed)")
        read_only = shape["query_class"].name == "READ_ONLY"
        if self.command == "GET" and shape["query_class"].name.startswith("MUTATING"):
            raise ClickHouseError.make(164, "READONLY", "Cannot execute query in readonly mode. "
                                                        "For queries over HTTP, method GET implies readonly. "
                                                        "You should use method POST for modifying queries")
        if shape["has_secrets"]:
            self.log_sql = "<query with secrets, not logged>"
        sleep = self.server.faults.slow_query(sql)
        if sleep:
            conn.run(sleep)
        result = conn.run(sql, default_format, bindings)
        body = result.bytes()
        headers = {"X-ClickHouse-Summary": _summary(result, {"written_rows": result.rows_written(),
                                                              "written_bytes": result.bytes_written()})}
        if read_only or body:  # the statement produced a result set
            trailing = _TRAILING_FORMAT.search(sql)
            fmt = trailing[1].decode() if trailing else default_format
            headers.update({"X-ClickHouse-Format": fmt, "Content-Type": content_type(fmt)})
        return Response(body=body, headers=headers)


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


def _summary(result, extra: dict) -> str:
    summary = {"read_rows": result.rows_read(), "read_bytes": result.bytes_read(), "written_rows": 0,
               "written_bytes": 0, "total_rows_to_read": result.rows_read(), "result_rows": 0,
               "result_bytes": 0, "elapsed_ns": int(result.elapsed() * 1e9)}
    summary.update(extra)
    return json.dumps({key: str(value) for key, value in summary.items()}, separators=(",", ":"))


def main() -> None:
    env = os.environ
    host, port = env.get("CLICKHOUSE_HTTP_HOST", "0.0.0.0"), int(env.get("CLICKHOUSE_HTTP_PORT", "8123"))
    data_dir = env.get("CLICKHOUSE_DATA_DIR", "/var/lib/clickhouse")
    engine = Engine(data_dir, env.get("CLICKHOUSE_MAX_MEMORY_BYTES"))
    server = FrontServer((host, port), engine, LabFaults(env.get("LAB_MEMORY_LIMIT_BYTES")),
                         env.get("CLICKHOUSE_PASSWORD", ""))

    def stop(signum, _frame) -> None:
        log("Information", "Application", f"Received termination signal ({signal.Signals(signum).name})")
        threading.Thread(target=server.shutdown).start()  # shutdown() blocks until serve_forever returns

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def expire_sessions() -> None:
        while True:
            time.sleep(5)
            engine.expire_sessions()

    threading.Thread(target=expire_sessions, daemon=True).start()
    log("Information", "Application",
        f"Ready for connections: http://{host}:{port} (engine {VERSION}, data {data_dir}, "
        f"password {'required' if server.password else 'not checked'})")
    server.serve_forever(poll_interval=0.5)
    server.server_close()
    # Committed parts are already on disk; give the engine a bounded time to shut down
    # (queries still running in request threads could hold it), then leave with 0.
    closer = threading.Thread(target=engine.close, daemon=True)
    closer.start()
    closer.join(5)
    log("Information", "Application", "Shut down")
    os._exit(0)


if __name__ == "__main__":
    main()
