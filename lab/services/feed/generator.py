"""Market-data feed of the lab: writes trades into ClickHouse continuously, stamped with the current time.

Stands in for K2's feed handlers + Kafka consumers. Bronze tables get one row per trade; silver gets
a normalised copy (gold candles follow by ClickHouse materialized views).

  generator.py run               backfill the last K2_LAB_BACKFILL_MINUTES if empty, then write forever
  generator.py spike --table T   insert FACTOR x the normal hourly volume of T spread over the last hour
"""
from __future__ import annotations

import argparse
import itertools
import os
import random
import signal
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import clickhouse_connect

EXCHANGES = {"binance": ("BTCUSDT", "ETHUSDT"), "kraken": ("XBT/USD", "ETH/USD"),
             "coinbase": ("BTC-USD", "ETH-USD")}
KRAKEN_CHANNEL_ID = 337  # K2 stores Kraken's channel_id as sequence_number: constant per channel.
_seq = itertools.count(int(time.time() * 1000) * 1000)
_offset = itertools.count(int(time.time() * 1000))


def client():
    return clickhouse_connect.get_client(
        host=os.environ.get("CLICKHOUSE_HOST", "clickhouse"), port=int(os.environ.get("CLICKHOUSE_PORT", "8123")),
        username="default", password=os.environ.get("CLICKHOUSE_PASSWORD", ""), database="k2",
        connect_timeout=3, send_receive_timeout=30)


def _trade_rows(exchange: str, stamps: list[datetime]):
    bronze, silver = [], []
    for ts in stamps:
        symbol = random.choice(EXCHANGES[exchange])
        price = Decimal(random.randint(2_000_000, 9_000_000)) / 100
        qty = Decimal(random.randint(1, 500_000)) / 100_000_000 * 1000
        seq = KRAKEN_CHANNEL_ID if exchange == "kraken" else next(_seq)
        ingested = ts + timedelta(milliseconds=random.randint(1, 40))
        bronze.append([ts, seq, symbol, price, qty, (price * qty).quantize(Decimal("1e-8")), ts, next(_offset),
                       random.randint(0, 2), ingested.replace(microsecond=0)])
        canonical = symbol.replace("/", "").replace("-", "").replace("XBT", "BTC").replace("USDT", "USD")
        # K2's silver v2 types: message_id UUID, side Enum8('BUY' = 1, 'SELL' = 2, ...), asset_class Enum8.
        silver.append([str(uuid.uuid4()), str(next(_offset)), exchange, symbol, canonical,
                       "crypto", "USD", price, qty, (price * qty).quantize(Decimal("1e-8")),
                       random.choice(("BUY", "SELL")), ts, ingested, ingested,
                       None if exchange == "kraken" else seq, None, True, [], {}, []])
    return bronze, silver


BRONZE_COLS = ["exchange_timestamp", "sequence_number", "symbol", "price", "quantity", "quote_volume",
               "event_time", "kafka_offset", "kafka_partition", "ingestion_timestamp"]
SILVER_COLS = ["message_id", "trade_id", "exchange", "symbol", "canonical_symbol", "asset_class", "currency",
               "price", "quantity", "quote_volume", "side", "timestamp", "ingestion_timestamp", "processed_at",
               "source_sequence", "platform_sequence", "is_valid", "trade_conditions", "vendor_data",
               "validation_errors"]


SPIKE_PARTITION = 9  # kafka_partition of spike rows (the feed uses 0-2), so that `lab clear` can remove them


def write(ch, exchange: str, stamps: list[datetime], spike: bool = False) -> None:
    bronze, silver = _trade_rows(exchange, stamps)
    if spike:
        for row in bronze:
            row[8] = SPIKE_PARTITION
    for start in range(0, len(bronze), 50_000):
        ch.insert(f"bronze_trades_{exchange}", bronze[start:start + 50_000], column_names=BRONZE_COLS)
        if not spike:
            ch.insert("silver_trades", silver[start:start + 50_000], column_names=SILVER_COLS)


def spread(count: int, start: datetime, end: datetime) -> list[datetime]:
    span = (end - start).total_seconds()
    return sorted(start + timedelta(seconds=random.random() * span) for _ in range(count))


def backfill(ch, rate: int, minutes: int) -> None:
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    for exchange in EXCHANGES:
        if ch.command(f"SELECT count() FROM bronze_trades_{exchange}") == 0 and minutes > 0:
            write(ch, exchange, spread(rate * 60 * minutes, now - timedelta(minutes=minutes), now))


# One insert per exchange every few seconds, not every second: each insert is a part that ClickHouse merges
# in the background, which cost a third of a core on this 2-core machine at one insert per second.
INSERT_INTERVAL_SECONDS = 5


def run(rate: int, backfill_minutes: int) -> None:
    ch = _reconnect()
    while True:  # a fault may stop ClickHouse while the feed starts: wait for it rather than exit
        try:
            backfill(ch, rate, backfill_minutes)
            break
        except Exception as exc:  # noqa: BLE001
            print(f"feed: backfill failed, retrying: {exc}".splitlines()[0], flush=True)
            time.sleep(2)
            ch = _reconnect()
    print(f"feed: backfilled {backfill_minutes} min, writing {rate} rows/s per exchange", flush=True)
    last = time.monotonic()
    while True:
        time.sleep(INSERT_INTERVAL_SECONDS)
        elapsed, last = time.monotonic() - last, time.monotonic()
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        try:
            for exchange in EXCHANGES:
                write(ch, exchange, spread(max(1, round(rate * elapsed)), now - timedelta(seconds=elapsed), now))
        except Exception as exc:  # noqa: BLE001 - ClickHouse down is a lab fault: keep trying, like a real feed handler.
            print(f"feed: insert failed, retrying: {exc}".splitlines()[0], flush=True)
            time.sleep(2)
            ch = _reconnect()


def _reconnect():
    while True:
        try:
            return client()
        except Exception:  # noqa: BLE001 - wait for ClickHouse to come back
            time.sleep(2)


def spike(table: str, factor: int, rate: int, after: datetime | None) -> int:
    """FACTOR x the normal hourly volume, stamped after `after` (the table's watermark) so that the next
    offload window really carries it, and within the last hour so that the runbook's volume query sees it."""
    exchange = table.removeprefix("bronze_trades_")
    if exchange not in EXCHANGES:
        raise SystemExit(f"spike: only bronze tables can spike, not {table!r}")
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    end = now - timedelta(minutes=5, seconds=1)  # inside the job's 5-minute buffer limit
    # Strictly after the watermark at ClickHouse's millisecond precision: a row stamped in the watermark's own
    # millisecond is never offloaded (the window is `ts > watermark`), which would be the lab's loss, not K2's.
    start = max(after + timedelta(milliseconds=1) if after else now - timedelta(hours=1), now - timedelta(hours=1))
    if start >= end - timedelta(seconds=10):  # a fresh watermark: the spike lands just after it
        end = start + timedelta(seconds=10)
    count = rate * 3600 * (factor - 1)
    ch = client()
    # In slices, so the feed's small container never holds the whole spike in memory.
    slices = max(1, count // 50_000)
    span = (end - start) / slices
    for i in range(slices):
        write(ch, exchange, spread(count // slices, start + i * span, start + (i + 1) * span), spike=True)
    return count // slices * slices


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("run")
    sp = sub.add_parser("spike")
    sp.add_argument("--table", required=True)
    sp.add_argument("--factor", type=int, default=10)
    sp.add_argument("--after", type=datetime.fromisoformat, help="the table's watermark (UTC)")
    args = parser.parse_args()
    rate = int(os.environ.get("K2_LAB_FEED_ROWS_PER_SECOND", "20"))
    if args.cmd == "run":
        run(rate, int(os.environ.get("K2_LAB_BACKFILL_MINUTES", "60")))
    else:
        after = args.after.astimezone(timezone.utc).replace(tzinfo=None) if args.after else None
        print(spike(args.table, args.factor, rate, after))


if __name__ == "__main__":
    main()
