"""lab/services/clickhouse/server.py: the ClickHouse HTTP interface over chdb, seen through clickhouse-connect.

One server (subprocess on a free 127.0.0.1 port, temp data dir) serves the whole module;
the crash hook gets a second, short-lived one.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from decimal import Decimal
from pathlib import Path

import clickhouse_connect
import pyarrow as pa
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

SERVER = Path(__file__).resolve().parents[2] / "lab" / "services" / "clickhouse" / "server.py"
PASSWORD = "s3cret-lab"
# The ballast test pushes RSS past 90% of this; the idle server sits near 350 MB.
LAB_MEMORY_LIMIT = 600 * 2**20
COLUMNS = ["ts", "n", "price", "symbol", "part", "ingested"]
TABLE_DDL = """
CREATE TABLE {name} (
    ts DateTime64(3), n UInt64, price Decimal64(8), symbol String, part UInt16, ingested DateTime
) ENGINE = MergeTree ORDER BY (ts, n)
TTL ingested + INTERVAL {ttl}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, data_dir: Path, log_path: Path):
        self.port = _free_port()
        env = dict(os.environ, CLICKHOUSE_HTTP_HOST="127.0.0.1", CLICKHOUSE_HTTP_PORT=str(self.port),
                   CLICKHOUSE_DATA_DIR=str(data_dir), CLICKHOUSE_PASSWORD=PASSWORD,
                   LAB_MEMORY_LIMIT_BYTES=str(LAB_MEMORY_LIMIT))
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, str(SERVER)], env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.request("GET", "/ping")[1] == b"Ok.\n":
                    break
            except OSError:
                pass
            assert self.proc.poll() is None, self.log_path.read_text()
            assert time.monotonic() < deadline, "server did not answer /ping in 30 s"
            time.sleep(0.1)

    def request(self, method: str, path: str, params: dict | None = None, body: bytes | None = None,
                headers: dict | None = None, password: str | None = PASSWORD):
        """One raw HTTP request: (status, body, headers)."""
        query = urllib.parse.urlencode(params or {})
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            all_headers = dict(headers or {})
            if password is not None:
                all_headers["X-ClickHouse-User"], all_headers["X-ClickHouse-Key"] = "default", password
            conn.request(method, f"{path}?{query}" if query else path, body=body, headers=all_headers)
            response = conn.getresponse()
            return response.status, response.read(), response.headers
        finally:
            conn.close()

    def client(self, **kwargs):
        kwargs.setdefault("password", PASSWORD)
        return clickhouse_connect.get_client(host="127.0.0.1", port=self.port, username="default", **kwargs)

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        finally:
            self._log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("clickhouse-front")
    srv = Server(root / "data", root / "server.log")
    yield srv
    assert srv.stop() == 0, "SIGTERM must end the server with exit code 0"


@pytest.fixture(scope="module")
def client(server):
    return server.client(compress="lz4")


def _rows(count: int, ingested: dt.datetime, start: int = 0) -> list[list]:
    ts = dt.datetime(2026, 1, 2, 3, 4, 5, 678000)
    return [[ts, start + i, Decimal("12345.12345678"), f"SYM{i % 7}", i % 1000, ingested] for i in range(count)]


def test_ping_and_root(server):
    assert server.request("GET", "/ping", password=None)[:2] == (200, b"Ok.\n")
    assert server.request("GET", "/", password=None)[:2] == (200, b"Ok.\n")


def test_select_one_version_and_headers(server, client):
    assert client.query("SELECT 1").result_rows == [(1,)]
    assert client.server_version.startswith("26.9")
    assert client.command("SELECT version()") == client.server_version
    status, body, headers = server.request("POST", "/", {"query_id": "my-query-1"}, b"SELECT 42 AS x")
    assert (status, body) == (200, b"42\n")
    assert headers["X-ClickHouse-Query-Id"] == "my-query-1"
    assert headers["X-ClickHouse-Format"] == "TabSeparated"
    assert headers["X-ClickHouse-Timezone"] == "UTC"
    assert '"read_rows":"1"' in headers["X-ClickHouse-Summary"]
    # A FORMAT clause wins over default_format; the query param and body are one text.
    status, body, headers = server.request("POST", "/", {"query": "SELECT 7 AS x", "default_format": "CSV"},
                                           b"FORMAT JSONEachRow")
    assert (status, body, headers["X-ClickHouse-Format"]) == (200, b'{"x":7}\n', "JSONEachRow")


def test_insert_100k_compressed_multi_block(server, client):
    client.command(TABLE_DDL.format(name="trades_lz4", ttl="7 DAY"))
    context = client.create_insert_context("trades_lz4", COLUMNS, data=_rows(100_000, dt.datetime(2030, 1, 1)))
    assert context.block_row_count < 100_000, "the insert must span several blocks (one LZ4 frame each)"
    summary = client.data_insert(context)
    assert summary.written_rows == 100_000
    assert client.command("SELECT count(), sum(n) FROM trades_lz4") == ["100000", str(sum(range(100_000)))]
    # zstd frames too (a smaller insert, still two blocks).
    zstd = server.client(compress="zstd")
    zstd.command(TABLE_DDL.format(name="trades_zstd", ttl="7 DAY"))
    zstd.insert("trades_zstd", _rows(70_000, dt.datetime(2030, 1, 1)), column_names=COLUMNS)
    assert zstd.command("SELECT count() FROM trades_zstd") == 70_000


def test_raw_gzip_chunked_insert(server):
    server.request("POST", "/", body=b"CREATE TABLE raw_csv (a UInt32, s String) ENGINE = MergeTree ORDER BY a")
    # Two gzip members in a chunked body (an iterable body makes http.client chunk it),
    # the INSERT header inside the compressed data.
    body = gzip.compress(b"INSERT INTO raw_csv FORMAT CSV\n1,\"a;b\"\n") + gzip.compress(b"2,c\n")
    status, _, headers = server.request("POST", "/", body=iter([body[:10], body[10:]]),
                                        headers={"Content-Encoding": "gzip"})
    assert status == 200
    assert '"written_rows":"2"' in headers["X-ClickHouse-Summary"]
    assert server.request("POST", "/", body=b"SELECT a, s FROM raw_csv ORDER BY a FORMAT CSV")[1] == b'1,"a;b"\n2,"c"\n'


def test_insert_arrow_and_query_arrow_round_trip(client):
    client.command(TABLE_DDL.format(name="trades_arrow", ttl="7 DAY"))
    ts = dt.datetime(2026, 1, 2, 3, 4, 5, 678000)
    table = pa.table({
        "ts": pa.array([ts, ts + dt.timedelta(milliseconds=1)], pa.timestamp("ms")),
        "n": pa.array([1, 2**63 + 5], pa.uint64()),
        "price": pa.array([Decimal("1.00000001"), Decimal("-99999.12345678")], pa.decimal128(18, 8)),
        "symbol": pa.array(["BTC-USD", "ETH;'x"], pa.string()),
        "part": pa.array([0, 65535], pa.uint16()),
        "ingested": pa.array([dt.datetime(2030, 1, 1), dt.datetime(2030, 1, 2)], pa.timestamp("s")),
    })
    client.insert_arrow("trades_arrow", table)
    result = client.query_arrow("SELECT * FROM trades_arrow ORDER BY n")
    assert result.column_names == COLUMNS
    types = {field.name: field.type for field in result.schema}
    assert types["ts"].unit == "ms" and pa.types.is_timestamp(types["ts"])
    assert (types["n"], types["part"], types["symbol"]) == (pa.uint64(), pa.uint16(), pa.string())
    assert types["price"] == pa.decimal128(18, 8)
    assert types["ingested"] == pa.uint32()  # ClickHouse's Arrow output for DateTime: epoch seconds
    rows = result.to_pylist()
    assert [row["n"] for row in rows] == [1, 2**63 + 5]
    assert [row["price"] for row in rows] == [Decimal("1.00000001"), Decimal("-99999.12345678")]
    assert [row["symbol"] for row in rows] == ["BTC-USD", "ETH;'x"]
    assert rows[1]["ts"].replace(tzinfo=None) == ts + dt.timedelta(milliseconds=1)
    assert rows[0]["ingested"] == int(dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc).timestamp())
    frame = client.query_df("SELECT symbol, part FROM trades_arrow ORDER BY n")
    assert frame["symbol"].tolist() == ["BTC-USD", "ETH;'x"]


def test_param_binding_is_not_injectable(server, client):
    client.command("CREATE TABLE victims (s String) ENGINE = MergeTree ORDER BY s")
    client.command("INSERT INTO victims VALUES ('kept')")
    nasty = "it's'; DROP TABLE victims; SELECT '\\\" -- {x:String}"
    assert client.query("SELECT {x:String} AS v", parameters={"x": nasty}).result_rows == [(nasty,)]
    matches = client.query("SELECT count() FROM victims WHERE s = {x:String}", parameters={"x": nasty})
    assert matches.result_rows == [(0,)]
    assert client.command("SELECT count() FROM victims") == 1
    # Several statements in one request are refused, as by clickhouse-server.
    with pytest.raises(DatabaseError) as error:
        client.command("SELECT 1; DROP TABLE victims")
    assert error.value.code == 62
    assert client.command("EXISTS TABLE victims") == 1


def test_syntax_error_is_code_62(server, client):
    with pytest.raises(DatabaseError) as error:
        client.query("SELEC 1")
    assert error.value.code == 62 and "SYNTAX_ERROR" in str(error.value)
    status, body, headers = server.request("POST", "/", body=b"SELEC 1")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (400, "62")
    assert body.startswith(b"Code: 62. DB::Exception: Syntax error") and b"(version 26.9" in body
    assert "<Error> executeQuery: Code: 62." in server.log()


def test_unknown_table_is_code_60(server, client):
    with pytest.raises(DatabaseError) as error:
        client.query("SELECT * FROM no_such_table")
    assert error.value.code == 60
    assert server.request("POST", "/", body=b"SELECT * FROM no_such_table")[0] == 404


def test_wrong_password_is_refused(server):
    with pytest.raises(DatabaseError) as error:
        server.client(password="wrong")
    assert "516" in str(error.value) and "AUTHENTICATION_FAILED" in str(error.value)
    status, body, headers = server.request("POST", "/", body=b"SELECT 1", password="wrong")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (403, "516")
    assert body.startswith(b"Code: 516. DB::Exception: default: Authentication failed")
    basic = base64.b64encode(f"default:{PASSWORD}".encode()).decode()
    assert server.request("POST", "/", body=b"SELECT 1", headers={"Authorization": f"Basic {basic}"},
                          password=None)[:2] == (200, b"1\n")
    assert server.request("POST", "/", {"user": "default", "password": PASSWORD}, b"SELECT 1", password=None)[0] == 200
    assert PASSWORD not in server.log()


def test_session_reuse_and_lock(server):
    session = server.client(session_id="lab-session-1")
    session.command("CREATE TEMPORARY TABLE scratch (a UInt8)")
    session.command("INSERT INTO scratch VALUES (1), (2)")
    session.command("SET max_threads = 3")
    assert session.command("SELECT count() FROM scratch") == 2
    assert session.command("SELECT getSetting('max_threads')") == 3
    # Settings sent as params last for one query only.
    assert session.command("SELECT getSetting('max_threads')", settings={"max_threads": 5}) == 5
    assert session.command("SELECT getSetting('max_threads')") == 3
    other = server.client()
    with pytest.raises(DatabaseError) as error:
        other.command("SELECT count() FROM scratch")
    assert error.value.code == 60
    # A second request on a busy session is refused, as by clickhouse-server.
    busy = threading.Thread(target=server.request,
                            args=("POST", "/", {"session_id": "lab-session-2"}, b"SELECT sleep(1)"))
    busy.start()
    time.sleep(0.3)
    status, body, _ = server.request("POST", "/", {"session_id": "lab-session-2"}, b"SELECT 1")
    busy.join()
    assert status == 500 and b"(SESSION_IS_LOCKED)" in body


def test_running_query_shows_in_system_processes(server, client):
    slow = threading.Thread(target=server.request, args=("POST", "/", None, b"SELECT sleep(2) AS lab_probe"))
    slow.start()
    time.sleep(0.5)
    running = client.query("SELECT query FROM system.processes WHERE query LIKE '%lab_probe%' "
                           "AND query NOT LIKE '%system.processes%'").result_rows
    slow.join()
    assert running == [("SELECT sleep(2) AS lab_probe",)]


def test_get_is_readonly(server):
    status, body, _ = server.request("GET", "/", {"query": "CREATE TABLE via_get (a UInt8) ENGINE = Memory"})
    assert status == 500 and b"(READONLY)" in body
    assert server.request("GET", "/", {"query": "SELECT 3"})[:2] == (200, b"3\n")


def test_ballast_fault_makes_queries_fail_with_241(server, client):
    assert server.request("POST", "/lab/ballast", {"mb": 600}, password=None)[0] == 200
    try:
        with pytest.raises(DatabaseError) as error:
            client.query("SELECT 1")
        assert error.value.code == 241
        assert "Memory limit (total) exceeded" in str(error.value)
        status, _, headers = server.request("POST", "/", body=b"SELECT 1")
        assert (status, headers["X-ClickHouse-Exception-Code"]) == (500, "241")
        assert server.request("GET", "/ping")[:2] == (200, b"Ok.\n")
    finally:
        assert server.request("POST", "/lab/ballast", {"mb": 0}, password=None)[0] == 200
    assert client.query("SELECT 1").result_rows == [(1,)]


def test_slow_fault_delays_selects(server, client):
    server.request("POST", "/lab/slow", {"seconds": 1}, password=None)
    try:
        started = time.monotonic()
        assert client.query("SELECT 5").result_rows == [(5,)]
        assert time.monotonic() - started >= 1
    finally:
        # Cleared, the server says so (no upper time bound here: speed belongs in make bench, not in an assertion).
        assert server.request("POST", "/lab/slow", {"seconds": 0}, password=None)[:2] == (200, b"slow_seconds=0.0\n")
    assert client.query("SELECT 5").result_rows == [(5,)]


def test_system_tables_show_the_ttl(client):
    client.command(TABLE_DDL.format(name="ttl_shown", ttl="7 DAY"))
    engine_full, create = client.query(
        "SELECT engine_full, create_table_query FROM system.tables WHERE database = currentDatabase() "
        "AND name = 'ttl_shown'").result_rows[0]
    assert "TTL ingested + toIntervalDay(7)" in engine_full
    assert "TTL ingested + toIntervalDay(7)" in create


def test_ttl_deletes_expired_rows(client):
    client.command(TABLE_DDL.format(name="ttl_expiring", ttl="4 SECOND"))
    now = client.command("SELECT now()")
    now = dt.datetime.strptime(now, "%Y-%m-%d %H:%M:%S")
    client.insert("ttl_expiring", _rows(10, now - dt.timedelta(days=1)), column_names=COLUMNS)  # expired already
    client.insert("ttl_expiring", _rows(20, now, start=100), column_names=COLUMNS)  # expires in ~4 s
    client.insert("ttl_expiring", _rows(5, now + dt.timedelta(days=1), start=200), column_names=COLUMNS)
    deadline = time.monotonic() + 30
    while (count := client.command("SELECT count() FROM ttl_expiring")) != 5:
        assert time.monotonic() < deadline, f"{count} rows left 30 s after their TTL"
        time.sleep(0.5)
    assert client.command("SELECT min(n) FROM ttl_expiring") == 200


def test_crash_fault_exits_non_zero(tmp_path):
    crashing = Server(tmp_path / "data", tmp_path / "server.log")
    try:
        crashing.request("POST", "/lab/crash", password=None)
        assert crashing.proc.wait(timeout=10) == 139
        assert "<Fatal> BaseDaemon" in crashing.log()
        assert "Received signal Segmentation fault (11)" in crashing.log()
    finally:
        crashing.stop()
