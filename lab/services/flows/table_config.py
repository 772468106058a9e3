"""K2's TABLE_CONFIG (fact sheet 3.3): the ten offloaded tables, as the flow and the job see them."""
from __future__ import annotations

import os

BRONZE_COLUMNS = ("exchange_timestamp,sequence_number,symbol,price,quantity,quote_volume,"
                  "event_time,kafka_offset,kafka_partition,ingestion_timestamp")
# Silver omits the Array/Map columns K2's JDBC read cannot handle.
SILVER_COLUMNS = ("message_id,trade_id,exchange,symbol,canonical_symbol,asset_class,currency,price,"
                  "quantity,quote_volume,side,timestamp,ingestion_timestamp,processed_at,"
                  "source_sequence,platform_sequence,is_valid")


def _table(layer: str, source: str, target: str, ts: str, seq: str, columns: str) -> dict:
    return {"layer": layer, "source_table": source, "target_table": target,
            "timestamp_col": ts, "sequence_col": seq, "columns": columns}


TABLE_CONFIG = [
    *(_table("bronze", f"bronze_trades_{ex}", f"cold.bronze_trades_{ex}", "exchange_timestamp",
             "sequence_number", BRONZE_COLUMNS) for ex in ("binance", "kraken", "coinbase")),
    _table("silver", "silver_trades", "cold.silver_trades", "timestamp", "source_sequence", SILVER_COLUMNS),
    *(_table("gold", f"ohlcv_{tf}", f"cold.gold_ohlcv_{tf}", "window_start", "trade_count", "*")
      for tf in ("1m", "5m", "15m", "30m", "1h", "1d")),
]


def enabled_tables() -> list[dict]:
    """Tables of the layers named in K2_OFFLOAD_LAYERS (default: all three, as in K2)."""
    layers = os.environ.get("K2_OFFLOAD_LAYERS", "bronze,silver,gold").split(",")
    return [t for t in TABLE_CONFIG if t["layer"] in layers]


def by_source(name: str) -> dict:
    for t in TABLE_CONFIG:
        if t["source_table"] == name:
            return t
    raise KeyError(name)
