# -*- coding: utf-8 -*-
# PRIVATE to this project's modules (library/offload_clickhouse): the pure logic of the ClickHouse side of the
# runbook (Step 4, Scenarios 2 and 5). No I/O here: TTL clause parsing, volume classification, TTL headroom
# arithmetic, identifier quoting and SQL building. Imported as ansible.module_utils.offload_clickhouse_logic.
from __future__ import annotations

import calendar
import re
from datetime import datetime, timedelta, timezone

try:
    from ansible.module_utils.offload_common import invalid_identifiers, parse_utc
except ImportError:  # plain pytest: module_utils/ is on sys.path (tests/conftest.py)
    from offload_common import invalid_identifiers, parse_utc

# --- identifiers and SQL ------------------------------------------------------------------------------------

LONG_QUERY_TEXT_CHARS = 300
LONG_QUERIES_LIMIT = 50


def quote_identifier(name: str) -> str:
    """`name` in backticks, after checking it is a plain identifier (letters, digits, underscores).

    Anything else raises ValueError: table and column names are never escaped into SQL, only accepted or refused.
    """
    if invalid_identifiers([name]):
        raise ValueError(f"invalid identifier {name!r}: only letters, digits and underscores are accepted")
    return f"`{name}`"


def qualified_table(database: str, table: str) -> str:
    return f"{quote_identifier(database)}.{quote_identifier(table)}"


# Values are always bound server-side ({name:Type}), never formatted into the SQL text.
SQL_PING = "SELECT 1"
SQL_SERVER = "SELECT version() AS version, toUnixTimestamp64Milli(now64(3)) AS now_ms, timezone() AS timezone"
SQL_TABLE = ("SELECT engine, engine_full, create_table_query FROM system.tables "
             "WHERE database = {database:String} AND name = {table:String}")
SQL_LONG_QUERIES = ("SELECT query_id, user, elapsed, substringUTF8(query, 1, {max_chars:UInt32}) AS query "
                    "FROM system.processes WHERE elapsed > {min_elapsed:Float64} AND query_id != queryID() "
                    f"ORDER BY elapsed DESC LIMIT {LONG_QUERIES_LIMIT}")


def rows_last_hour_sql(database: str, table: str, timestamp_col: str) -> str:
    """The runbook's volume query (Scenario 5 step 1), for one table."""
    return (f"SELECT count() FROM {qualified_table(database, table)} "
            f"WHERE {quote_identifier(timestamp_col)} > now() - INTERVAL 1 HOUR")


def oldest_row_sql(database: str, table: str, timestamp_col: str) -> str:
    """The oldest value of the timestamp column as epoch milliseconds (no time-zone ambiguity).

    ORDER BY ... LIMIT 1 rather than min(): when the column leads the sorting key (K2 binance/kraken) ClickHouse
    reads in order and stops after the first granule instead of scanning the column.
    """
    col = quote_identifier(timestamp_col)
    return (f"SELECT toUnixTimestamp64Milli(toDateTime64({col}, 3, 'UTC')) "
            f"FROM {qualified_table(database, table)} ORDER BY {col} ASC LIMIT 1")


# --- volume -------------------------------------------------------------------------------------------------

def classify_volume(rows: int | None, normal_per_hour: int, spike_per_hour: int) -> str | None:
    """The runbook's thresholds: below `normal` is normal, above `spike` is a spike, in between (both edges
    included) elevated. None when the count is unknown."""
    if rows is None:
        return None
    if rows < normal_per_hour:
        return "normal"
    if rows > spike_per_hour:
        return "spike"
    return "elevated"


# --- TTL clause ---------------------------------------------------------------------------------------------

# Fixed-length units in seconds; calendar units in months (their interval_seconds is nominal: month = 30 days,
# quarter = 90 days, year = 365 days; deadlines and headroom use real calendar arithmetic, as ClickHouse does).
FIXED_UNITS = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400, "WEEK": 7 * 86400}
CALENDAR_UNITS = {"MONTH": 1, "QUARTER": 3, "YEAR": 12}
NOMINAL_MONTH_SECONDS = 30 * 86400
SUBSECOND_UNITS = {"NANOSECOND", "MICROSECOND", "MILLISECOND"}
MAX_CLAUSE_CHARS = 4096
MAX_NESTING = 16
MAX_COUNT_DIGITS = 6

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^'\\]|\\.|'')*')
  | (?P<quoted>`(?:[^`\\]|\\.|``)*`|"(?:[^"\\]|\\.|"")*")
  | (?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[(),+\-*/=<>!.;\[\]{}:%|&^~?])
""", re.X | re.S | re.ASCII)
_ACTION_WORDS = {"DELETE", "WHERE", "TO", "RECOMPRESS", "GROUP", "SET"}
_TO_INTERVAL = re.compile(r"^toInterval([A-Za-z]+)$", re.I)


class TTLParseError(ValueError):
    """The TTL clause is not one this module understands; the message is the reason reported."""


class _Tok:
    __slots__ = ("kind", "text", "start", "end")

    def __init__(self, kind: str, text: str, start: int, end: int):
        self.kind, self.text, self.start, self.end = kind, text, start, end

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "word" else ""

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"{self.kind}:{self.text}"


def _tokens(text: str) -> list[_Tok]:
    out, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            char = text[pos]
            if char in "'`\"":
                raise TTLParseError(f"unbalanced quote at character {pos + 1}")
            raise TTLParseError(f"unexpected character {char!r} at character {pos + 1}")
        if match.lastgroup != "ws":
            out.append(_Tok(match.lastgroup, match.group(), match.start(), match.end()))
        pos = match.end()
    return out


def _unquote(text: str) -> str:
    quote = text[0]
    body = text[1:-1].replace(quote * 2, quote)
    return re.sub(r"\\(.)", r"\1", body)


def extract_ttl_clause(definition: str | None) -> str | None:
    """The table-level TTL clause of an engine definition (system.tables.engine_full, or the part of
    create_table_query after ENGINE =), without the TTL keyword; None when there is none.

    Only a TTL keyword outside brackets and quotes counts (column TTLs sit inside the column list); the clause
    ends at SETTINGS or COMMENT. Raises TTLParseError when the text cannot be tokenised (unbalanced quote).
    """
    if not isinstance(definition, str) or not definition.strip():
        return None
    tokens = _tokens(definition)
    depth, start, stop = 0, None, None
    for i, tok in enumerate(tokens):
        if tok.kind == "punct" and tok.text in "([":
            depth += 1
        elif tok.kind == "punct" and tok.text in ")]":
            depth -= 1
        elif depth == 0 and tok.kind == "word":
            prev = tokens[i - 1].upper if i else ""
            if start is None and tok.upper == "TTL" and prev not in ("BY", "KEY"):
                start = i + 1
            elif start is not None and tok.upper in ("SETTINGS", "COMMENT"):
                stop = i
                break
    if start is None or start >= len(tokens):
        return None
    end = tokens[stop - 1].end if stop is not None else tokens[-1].end
    clause = definition[tokens[start].start:end].strip()
    return clause or None


def engine_definition(create_table_query: str | None) -> str | None:
    """The part of a CREATE TABLE statement from the top-level ENGINE keyword on (fallback when engine_full is
    empty)."""
    if not isinstance(create_table_query, str):
        return None
    tokens = _tokens(create_table_query)
    depth = 0
    for tok in tokens:
        if tok.kind == "punct" and tok.text in "([":
            depth += 1
        elif tok.kind == "punct" and tok.text in ")]":
            depth -= 1
        elif depth == 0 and tok.upper == "ENGINE":
            return create_table_query[tok.start:]
    return None


def _split_top_level(tokens: list[_Tok]) -> list[list[_Tok]]:
    groups, current, depth = [], [], 0
    for tok in tokens:
        if tok.kind == "punct" and tok.text in "([":
            depth += 1
        elif tok.kind == "punct" and tok.text in ")]":
            depth -= 1
        if depth == 0 and tok.kind == "punct" and tok.text == ",":
            groups.append(current)
            current = []
        else:
            current.append(tok)
    groups.append(current)
    return groups


def _unit(word: str) -> str:
    unit = word.upper()
    if unit.endswith("S") and unit[:-1] in FIXED_UNITS.keys() | CALENDAR_UNITS.keys() | SUBSECOND_UNITS:
        unit = unit[:-1]
    if unit in SUBSECOND_UNITS:
        raise TTLParseError(f"sub-second interval unit {word} is not supported")
    if unit not in FIXED_UNITS and unit not in CALENDAR_UNITS:
        raise TTLParseError(f"unknown interval unit {word!r}")
    return unit


def _count(text: str) -> int:
    if not re.fullmatch(r"[0-9]+", text):
        raise TTLParseError(f"interval count {text!r} is not a whole number")
    if len(text.lstrip("0")) > MAX_COUNT_DIGITS:
        raise TTLParseError(f"interval count {text} is implausibly large")
    count = int(text)
    if count <= 0:
        raise TTLParseError("interval count must be positive")
    return count


class _ExprParser:
    """Recursive descent over `term ('+' term)*`; a term is a column, f(column, ...), an interval
    (INTERVAL n UNIT, INTERVAL 'n unit', toIntervalUnit(n), or the fact sheet's shorthand `n UNIT`), a bare number
    or a bracketed sum."""

    def __init__(self, tokens: list[_Tok]):
        self.tokens, self.pos = tokens, 0

    def peek(self, offset: int = 0) -> _Tok | None:
        i = self.pos + offset
        return self.tokens[i] if i < len(self.tokens) else None

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise TTLParseError("TTL expression ends too early")
        self.pos += 1
        return tok

    def expect(self, text: str) -> None:
        tok = self.take()
        if tok.text != text:
            raise TTLParseError(f"expected {text!r}, found {tok.text!r}")

    def expr(self, depth: int = 0) -> list[tuple]:
        terms = self.term(depth)
        while (tok := self.peek()) is not None and tok.kind == "punct" and tok.text == "+":
            self.pos += 1
            terms += self.term(depth)
        return terms

    def term(self, depth: int) -> list[tuple]:
        if depth > MAX_NESTING:
            raise TTLParseError("TTL expression is nested too deeply")
        tok = self.take()
        if tok.kind == "punct" and tok.text == "(":
            inner = self.expr(depth + 1)
            self.expect(")")
            return inner
        if tok.kind == "number":
            nxt = self.peek()
            if nxt is not None and nxt.kind == "word" and nxt.upper not in _ACTION_WORDS:
                self.pos += 1
                return [("interval", _count(tok.text), _unit(nxt.text))]
            return [("number", tok.text)]
        if tok.upper == "INTERVAL":
            value = self.take()
            if value.kind == "string":
                parts = _unquote(value.text).split()
                if len(parts) != 2:
                    raise TTLParseError(f"cannot read interval {value.text}")
                return [("interval", _count(parts[0]), _unit(parts[1]))]
            if value.kind != "number":
                raise TTLParseError(f"INTERVAL must be followed by a number, found {value.text!r}")
            unit = self.take()
            if unit.kind != "word":
                raise TTLParseError(f"INTERVAL {value.text} has no unit")
            return [("interval", _count(value.text), _unit(unit.text))]
        if tok.kind == "word" and (nxt := self.peek()) is not None and nxt.text == "(":
            self.pos += 1
            match = _TO_INTERVAL.match(tok.text)
            if match:
                value = self.take()
                if value.kind != "number":
                    raise TTLParseError(f"{tok.text}() needs a number, found {value.text!r}")
                self.expect(")")
                return [("interval", _count(value.text), _unit(match.group(1)))]
            return [("call", tok.text, self.call_first_arg(depth))]
        if tok.kind == "word" and tok.upper not in _ACTION_WORDS | {"INTERVAL"}:
            return [("column", tok.text)]
        if tok.kind == "quoted":
            return [("column", _unquote(tok.text))]
        raise TTLParseError(f"unexpected {tok.text!r} in TTL expression")

    def call_first_arg(self, depth: int) -> str | None:
        """Skip a function's arguments (up to the matching bracket); return its first argument when that is a
        plain column name, else None."""
        first, level, index = None, 1, 0
        while level:
            tok = self.take()
            if tok.kind == "punct" and tok.text in "([":
                level += 1
                if level > MAX_NESTING + depth:
                    raise TTLParseError("TTL expression is nested too deeply")
            elif tok.kind == "punct" and tok.text in ")]":
                level -= 1
            if index == 0 and level == 1 and tok.kind in ("word", "quoted"):
                nxt = self.peek()
                if nxt is not None and nxt.text in (",", ")"):
                    first = tok.text if tok.kind == "word" else _unquote(tok.text)
            index += 1
        return first


def _parse_rule(tokens: list[_Tok], text: str) -> dict:
    """One TTL element: `expr [DELETE | TO DISK|VOLUME '..' | RECOMPRESS ... | GROUP BY ...] [WHERE ...]`."""
    parser = _ExprParser(tokens)
    terms = parser.expr()
    rest = tokens[parser.pos:]
    head = rest[0].upper if rest else ""
    conditional = any(t.upper == "WHERE" for t in rest)
    if not rest or head in ("DELETE", "WHERE"):
        action = "delete"
    elif head == "TO":
        action = "move"
    elif head == "RECOMPRESS":
        action = "recompress"
    elif head == "GROUP":
        action = "group_by"
    else:
        raise TTLParseError(f"unexpected {rest[0].text!r} after the TTL expression")
    if action == "delete" and rest and head == "DELETE" and len(rest) > 1 and rest[1].upper != "WHERE":
        raise TTLParseError(f"unexpected {rest[1].text!r} after DELETE")

    numbers = [t[1] for t in terms if t[0] == "number"]
    intervals = [[t[1], t[2]] for t in terms if t[0] == "interval"]
    bases = [t for t in terms if t[0] in ("column", "call")]
    if numbers:
        raise TTLParseError(f"bare number {numbers[0]} in the TTL expression: its unit depends on the column "
                            "type (days for Date, seconds for DateTime)")
    if not intervals:
        raise TTLParseError("no interval in the TTL expression")
    if len(bases) > 1:
        raise TTLParseError("more than one time expression in the TTL expression")
    column = None
    if bases:
        column = bases[0][1] if bases[0][0] == "column" else bases[0][2]
        if column is None:
            raise TTLParseError(f"the time argument of {bases[0][1]}(...) is not a plain column")
    return {"text": text, "action": action, "conditional": conditional, "column": column,
            "intervals": intervals, "interval_seconds": interval_seconds(intervals)}


def interval_seconds(intervals: list) -> int:
    """Nominal length of a sum of intervals (calendar units: month = 30 days, quarter = 90, year = 365)."""
    total = 0
    for count, unit in intervals:
        if unit in FIXED_UNITS:
            total += count * FIXED_UNITS[unit]
        elif unit == "YEAR":
            total += count * 365 * 86400
        else:
            total += count * CALENDAR_UNITS[unit] * NOMINAL_MONTH_SECONDS
    return total


def _unknown(expression, reason: str) -> dict:
    return {"expression": expression, "column": None, "interval_seconds": None, "intervals": None,
            "conditional": False, "reason": reason}


def parse_ttl(clause) -> dict:
    """Parse a table TTL clause (as ClickHouse prints it in engine_full, or as written in DDL).

    Returns {expression, column, interval_seconds, intervals, conditional, reason}. The rule that removes rows
    (DELETE, the default, or GROUP BY) with the shortest interval wins; moves and recompression are ignored.
    Anything not understood gives interval_seconds None and a reason; this function never raises.
    """
    if clause is None:
        return _unknown(None, "the table has no TTL clause")
    if not isinstance(clause, str):
        return _unknown(None, f"TTL clause is not text ({type(clause).__name__})")
    text = clause.strip()
    keyword = re.match(r"TTL(?:\s+(?![-+*/,)])|$)", text, re.I)  # `TTL ts + ...`, not a column named ttl
    if keyword:
        text = text[keyword.end():].strip()
    if not text:
        return _unknown(None, "empty TTL clause")
    if len(text) > MAX_CLAUSE_CHARS:
        return _unknown(text[:200] + "...", f"TTL clause longer than {MAX_CLAUSE_CHARS} characters")
    try:
        tokens = _tokens(text)
        groups = _split_top_level(tokens)
    except TTLParseError as exc:
        return _unknown(text, f"cannot parse TTL clause: {exc}")
    rules, errors = [], []
    for group in groups:
        if not group:
            errors.append("empty TTL element")
            continue
        piece = text[group[0].start:group[-1].end]
        try:
            rules.append(_parse_rule(group, piece))
        except TTLParseError as exc:
            # `GROUP BY a, b SET ...` continues the previous element after a comma.
            if rules and rules[-1]["action"] == "group_by":
                continue
            errors.append(str(exc))
    if errors:  # an unreadable rule could delete sooner than the readable ones: the whole TTL is unknown
        return _unknown(text, f"cannot parse TTL clause: {errors[0]}")
    removing = [r for r in rules if r["action"] in ("delete", "group_by")]
    if not removing:
        return _unknown(text, "the TTL clause has no DELETE rule (only moves or recompression)")
    best = min(removing, key=lambda r: r["interval_seconds"])
    return {"expression": text, "column": best["column"], "interval_seconds": best["interval_seconds"],
            "intervals": best["intervals"], "conditional": best["conditional"], "reason": None}


def ttl_from_table(engine_full: str | None, create_table_query: str | None) -> dict:
    """The TTL of a table from its system.tables row: engine_full first, create_table_query as fallback."""
    try:
        definition = engine_full if isinstance(engine_full, str) and engine_full.strip() else \
            engine_definition(create_table_query)
        if not definition:
            return _unknown(None, "the table has no engine definition (view or special engine)")
        return parse_ttl(extract_ttl_clause(definition))
    except TTLParseError as exc:
        return _unknown(None, f"cannot read the table definition: {exc}")


# --- time arithmetic ----------------------------------------------------------------------------------------

def parse_timestamp(value) -> datetime:
    """parse_utc (offload_common), strict: a value that is not a timestamp raises ValueError (the caller reports
    the table it came from)."""
    parsed = parse_utc(value)
    if parsed is None:
        raise ValueError(f"not a timestamp: {value!r}")
    return parsed


def _add_months(moment: datetime, months: int) -> datetime:
    """Calendar months, clamping the day to the month's length (as ClickHouse's addMonths)."""
    year, month0 = divmod(moment.month - 1 + months, 12)
    year += moment.year
    day = min(moment.day, calendar.monthrange(year, month0 + 1)[1])
    return moment.replace(year=year, month=month0 + 1, day=day)


def add_intervals(moment: datetime, intervals: list) -> datetime:
    """moment + each interval in order (raises OverflowError/ValueError past year 9999)."""
    for count, unit in intervals:
        if unit in FIXED_UNITS:
            moment = moment + timedelta(seconds=count * FIXED_UNITS[unit])
        else:
            moment = _add_months(moment, count * CALENDAR_UNITS[unit])
    return moment


def ttl_deadline(watermark, intervals: list | None) -> datetime | None:
    """When TTL starts deleting rows newer than the watermark: watermark + TTL interval. None when unknown."""
    if watermark is None or not intervals:
        return None
    try:
        return add_intervals(parse_timestamp(watermark), intervals)
    except (OverflowError, ValueError):
        return None


def headroom_seconds(watermark, intervals: list | None, now: datetime) -> int | None:
    """watermark + TTL interval - now, in whole seconds (floor). Negative: rows not yet offloaded may already be
    deleted by TTL. None when the watermark or the interval is unknown."""
    deadline = ttl_deadline(watermark, intervals)
    if deadline is None:
        return None
    return int((deadline - now).total_seconds() // 1)


def epoch_ms_to_iso(value) -> str | None:
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(int(value) / 1000, tz=timezone.utc).isoformat()
    except (OverflowError, OSError, ValueError):
        return None


# --- long-running queries ---------------------------------------------------------------------------------

def long_query(row: dict, table_names) -> dict:
    """One system.processes row, with the query text cut to LONG_QUERY_TEXT_CHARS characters and the names of
    the inspected tables it mentions (the runbook filters on '%bronze_trades%')."""
    text = row.get("query") or ""
    if len(text) > LONG_QUERY_TEXT_CHARS:
        text = text[:LONG_QUERY_TEXT_CHARS]
    elapsed = row.get("elapsed")
    return {"query_id": row.get("query_id"), "user": row.get("user"),
            "elapsed": round(float(elapsed), 3) if elapsed is not None else None, "query": text,
            "tables": sorted(t for t in table_names if re.search(rf"\b{re.escape(t)}\b", text))}


# --- errors -------------------------------------------------------------------------------------------------

_EXCEPTION_TEXT = re.compile(r"Code: \d+\. DB::Exception: .*", re.S)
_TRAILERS = re.compile(r"\s*\((?:version\s+(?:[^()]|\([^()]*\))*|for url [^()]*)\)")
_TRANSPORT_REASONS = (
    re.compile(r"\[Errno -?\d+\] [^\"'()]+"),
    re.compile(r"(?:Read|Connect(?:ion)?)[^\"'()]*timed out[^\"']*?\((?:connect|read) timeout=[\d.]+\)"),
    re.compile(r"timed out\. \((?:connect|read) timeout=[\d.]+\)"),
    re.compile(r"Remote end closed connection without response|Connection (?:reset|aborted)[^\"'()]*"),
)


def one_line_error(text: str, secrets=(), limit: int = 300) -> str:
    """A driver error as one line: the server's `Code: N. DB::Exception: ...` when there is one, else the
    transport reason (`[Errno 111] Connection refused`, `Read timed out.`); no version/url trailers, whitespace
    collapsed, secrets masked, at most `limit` characters."""
    text = str(text or "").strip()
    match = _EXCEPTION_TEXT.search(text)
    if match:
        text = _TRAILERS.sub("", match.group(0))
    else:
        for pattern in _TRANSPORT_REASONS:
            reason = pattern.search(text)
            if reason:
                text = reason.group(0)
                break
        text = _TRAILERS.sub("", text)
    text = " ".join(text.split()).rstrip(" .,:")
    for secret in secrets:
        if secret:
            text = text.replace(secret, "********")
    if len(text) > limit:
        text = text[:limit - 3] + "..."
    return text or "unknown error"


def connection_error(params: dict, exc: BaseException, secrets=()) -> str:
    """Why the server at clickhouse_host:clickhouse_port could not be used, in one line that names it."""
    reason = one_line_error(str(exc).strip() or type(exc).__name__, secrets)
    return f"ClickHouse at {params['clickhouse_host']}:{params['clickhouse_port']}: {reason}"
