-- K2 source tables (database k2), column types, ORDER BY and TTL as in the K2 fact sheet, section 6.
CREATE DATABASE IF NOT EXISTS k2;

CREATE TABLE IF NOT EXISTS k2.bronze_trades_binance (
    exchange_timestamp DateTime64(3), sequence_number UInt64, symbol String,
    price Decimal64(8), quantity Decimal64(8), quote_volume Decimal64(8),
    event_time DateTime64(3), kafka_offset UInt64, kafka_partition UInt16, ingestion_timestamp DateTime
) ENGINE = MergeTree ORDER BY (exchange_timestamp, sequence_number)
TTL ingestion_timestamp + INTERVAL 7 DAY;

CREATE TABLE IF NOT EXISTS k2.bronze_trades_kraken (
    exchange_timestamp DateTime64(3), sequence_number UInt64, symbol String,
    price Decimal64(8), quantity Decimal64(8), quote_volume Decimal64(8),
    event_time DateTime64(3), kafka_offset UInt64, kafka_partition UInt16, ingestion_timestamp DateTime
) ENGINE = MergeTree ORDER BY (exchange_timestamp, sequence_number)
TTL ingestion_timestamp + toIntervalDay(7);

CREATE TABLE IF NOT EXISTS k2.bronze_trades_coinbase (
    exchange_timestamp DateTime64(3), sequence_number UInt64, symbol String,
    price Decimal(18, 8), quantity Decimal(18, 8), quote_volume Decimal(18, 8),
    event_time DateTime64(3), kafka_offset UInt64, kafka_partition UInt16, ingestion_timestamp DateTime
) ENGINE = MergeTree PARTITION BY toYYYYMMDD(exchange_timestamp)
ORDER BY (symbol, exchange_timestamp, sequence_number)
TTL toDateTime(exchange_timestamp) + INTERVAL 7 DAY;

CREATE TABLE IF NOT EXISTS k2.silver_trades (
    message_id String, trade_id String, exchange String, symbol String, canonical_symbol String,
    asset_class String, currency String, price Decimal(18, 8), quantity Decimal(18, 8),
    quote_volume Decimal(18, 8), side String, timestamp DateTime64(6), ingestion_timestamp DateTime64(6),
    processed_at DateTime64(6), source_sequence Nullable(UInt64), platform_sequence Nullable(UInt64),
    is_valid Bool, trade_conditions Array(String), vendor_data Map(String, String),
    validation_errors Array(String)
) ENGINE = MergeTree PARTITION BY (exchange, asset_class, toYYYYMMDD(timestamp))
ORDER BY (exchange, asset_class, canonical_symbol, timestamp)
TTL toDateTime(timestamp) + INTERVAL 30 DAY;

-- Gold: OHLCV candles fed from silver by materialized views.
CREATE TABLE IF NOT EXISTS k2.ohlcv_1m (
    exchange String, canonical_symbol String, window_start DateTime, open_time DateTime64(6),
    open_price Decimal(18, 8), close_time DateTime64(6), close_price Decimal(18, 8),
    high_price Decimal(18, 8), low_price Decimal(18, 8), volume Decimal(38, 8),
    quote_volume Decimal(38, 8), trade_count UInt64
) ENGINE = SummingMergeTree((volume, quote_volume, trade_count))
PARTITION BY (exchange, toYYYYMM(window_start)) ORDER BY (exchange, canonical_symbol, window_start)
TTL window_start + INTERVAL 1 YEAR;

CREATE MATERIALIZED VIEW IF NOT EXISTS k2.ohlcv_1m_mv TO k2.ohlcv_1m AS
SELECT exchange, canonical_symbol, toStartOfMinute(timestamp) AS window_start,
       min(timestamp) AS open_time, argMin(price, timestamp) AS open_price,
       max(timestamp) AS close_time, argMax(price, timestamp) AS close_price,
       max(price) AS high_price, min(price) AS low_price,
       toDecimal128(sum(quantity), 8) AS volume, toDecimal128(sum(quote_volume), 8) AS quote_volume,
       count() AS trade_count
FROM k2.silver_trades GROUP BY exchange, canonical_symbol, window_start;
CREATE TABLE IF NOT EXISTS k2.ohlcv_5m (
    exchange String, canonical_symbol String, window_start DateTime, open_time DateTime64(6),
    open_price Decimal(18, 8), close_time DateTime64(6), close_price Decimal(18, 8),
    high_price Decimal(18, 8), low_price Decimal(18, 8), volume Decimal(38, 8),
    quote_volume Decimal(38, 8), trade_count UInt64
) ENGINE = SummingMergeTree((volume, quote_volume, trade_count))
PARTITION BY (exchange, toYYYYMM(window_start)) ORDER BY (exchange, canonical_symbol, window_start)
TTL window_start + INTERVAL 1 YEAR;

CREATE MATERIALIZED VIEW IF NOT EXISTS k2.ohlcv_5m_mv TO k2.ohlcv_5m AS
SELECT exchange, canonical_symbol, toStartOfFiveMinutes(timestamp) AS window_start,
       min(timestamp) AS open_time, argMin(price, timestamp) AS open_price,
       max(timestamp) AS close_time, argMax(price, timestamp) AS close_price,
       max(price) AS high_price, min(price) AS low_price,
       toDecimal128(sum(quantity), 8) AS volume, toDecimal128(sum(quote_volume), 8) AS quote_volume,
       count() AS trade_count
FROM k2.silver_trades GROUP BY exchange, canonical_symbol, window_start;
CREATE TABLE IF NOT EXISTS k2.ohlcv_15m (
    exchange String, canonical_symbol String, window_start DateTime, open_time DateTime64(6),
    open_price Decimal(18, 8), close_time DateTime64(6), close_price Decimal(18, 8),
    high_price Decimal(18, 8), low_price Decimal(18, 8), volume Decimal(38, 8),
    quote_volume Decimal(38, 8), trade_count UInt64
) ENGINE = SummingMergeTree((volume, quote_volume, trade_count))
PARTITION BY (exchange, toYYYYMM(window_start)) ORDER BY (exchange, canonical_symbol, window_start)
TTL window_start + INTERVAL 1 YEAR;

CREATE MATERIALIZED VIEW IF NOT EXISTS k2.ohlcv_15m_mv TO k2.ohlcv_15m AS
SELECT exchange, canonical_symbol, toStartOfFifteenMinutes(timestamp) AS window_start,
       min(timestamp) AS open_time, argMin(price, timestamp) AS open_price,
       max(timestamp) AS close_time, argMax(price, timestamp) AS close_price,
       max(price) AS high_price, min(price) AS low_price,
       toDecimal128(sum(quantity), 8) AS volume, toDecimal128(sum(quote_volume), 8) AS quote_volume,
       count() AS trade_count
FROM k2.silver_trades GROUP BY exchange, canonical_symbol, window_start;
CREATE TABLE IF NOT EXISTS k2.ohlcv_30m (
    exchange String, canonical_symbol String, window_start DateTime, open_time DateTime64(6),
    open_price Decimal(18, 8), close_time DateTime64(6), close_price Decimal(18, 8),
    high_price Decimal(18, 8), low_price Decimal(18, 8), volume Decimal(38, 8),
    quote_volume Decimal(38, 8), trade_count UInt64
) ENGINE = SummingMergeTree((volume, quote_volume, trade_count))
PARTITION BY (exchange, toYYYYMM(window_start)) ORDER BY (exchange, canonical_symbol, window_start)
TTL window_start + INTERVAL 1 YEAR;

CREATE MATERIALIZED VIEW IF NOT EXISTS k2.ohlcv_30m_mv TO k2.ohlcv_30m AS
SELECT exchange, canonical_symbol, toStartOfInterval(timestamp, INTERVAL 30 MINUTE) AS window_start,
       min(timestamp) AS open_time, argMin(price, timestamp) AS open_price,
       max(timestamp) AS close_time, argMax(price, timestamp) AS close_price,
       max(price) AS high_price, min(price) AS low_price,
       toDecimal128(sum(quantity), 8) AS volume, toDecimal128(sum(quote_volume), 8) AS quote_volume,
       count() AS trade_count
FROM k2.silver_trades GROUP BY exchange, canonical_symbol, window_start;
CREATE TABLE IF NOT EXISTS k2.ohlcv_1h (
    exchange String, canonical_symbol String, window_start DateTime, open_time DateTime64(6),
    open_price Decimal(18, 8), close_time DateTime64(6), close_price Decimal(18, 8),
    high_price Decimal(18, 8), low_price Decimal(18, 8), volume Decimal(38, 8),
    quote_volume Decimal(38, 8), trade_count UInt64
) ENGINE = SummingMergeTree((volume, quote_volume, trade_count))
PARTITION BY (exchange, toYYYYMM(window_start)) ORDER BY (exchange, canonical_symbol, window_start)
TTL window_start + INTERVAL 1 YEAR;

CREATE MATERIALIZED VIEW IF NOT EXISTS k2.ohlcv_1h_mv TO k2.ohlcv_1h AS
SELECT exchange, canonical_symbol, toStartOfHour(timestamp) AS window_start,
       min(timestamp) AS open_time, argMin(price, timestamp) AS open_price,
       max(timestamp) AS close_time, argMax(price, timestamp) AS close_price,
       max(price) AS high_price, min(price) AS low_price,
       toDecimal128(sum(quantity), 8) AS volume, toDecimal128(sum(quote_volume), 8) AS quote_volume,
       count() AS trade_count
FROM k2.silver_trades GROUP BY exchange, canonical_symbol, window_start;
CREATE TABLE IF NOT EXISTS k2.ohlcv_1d (
    exchange String, canonical_symbol String, window_start DateTime, open_time DateTime64(6),
    open_price Decimal(18, 8), close_time DateTime64(6), close_price Decimal(18, 8),
    high_price Decimal(18, 8), low_price Decimal(18, 8), volume Decimal(38, 8),
    quote_volume Decimal(38, 8), trade_count UInt64
) ENGINE = SummingMergeTree((volume, quote_volume, trade_count))
PARTITION BY (exchange, toYYYYMM(window_start)) ORDER BY (exchange, canonical_symbol, window_start)
TTL window_start + INTERVAL 2 YEAR;

CREATE MATERIALIZED VIEW IF NOT EXISTS k2.ohlcv_1d_mv TO k2.ohlcv_1d AS
SELECT exchange, canonical_symbol, toStartOfDay(timestamp) AS window_start,
       min(timestamp) AS open_time, argMin(price, timestamp) AS open_price,
       max(timestamp) AS close_time, argMax(price, timestamp) AS close_price,
       max(price) AS high_price, min(price) AS low_price,
       toDecimal128(sum(quantity), 8) AS volume, toDecimal128(sum(quote_volume), 8) AS quote_volume,
       count() AS trade_count
FROM k2.silver_trades GROUP BY exchange, canonical_symbol, window_start;
