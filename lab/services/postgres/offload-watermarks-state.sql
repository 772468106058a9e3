-- K2's real watermark table (docker/postgres/ddl/offload-watermarks.sql): ONE ROW PER TABLE.
CREATE TABLE IF NOT EXISTS offload_watermarks (
    table_name TEXT PRIMARY KEY,
    last_offload_timestamp TIMESTAMPTZ NOT NULL,
    last_offload_max_sequence BIGINT NOT NULL,
    last_offload_row_count BIGINT DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'initialized',
    last_successful_run TIMESTAMPTZ,
    last_run_duration_seconds INTEGER,
    failure_count INTEGER DEFAULT 0,
    last_error_message TEXT,
    created_at TIMESTAMPTZ DEFAULT NOW(),
    updated_at TIMESTAMPTZ DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_watermarks_status ON offload_watermarks (status);
CREATE INDEX IF NOT EXISTS idx_watermarks_last_run ON offload_watermarks (last_successful_run DESC);
INSERT INTO offload_watermarks (table_name, last_offload_timestamp, last_offload_max_sequence, status)
SELECT t, '1970-01-01 00:00:00+00', 0, 'initialized'
FROM unnest(ARRAY['bronze_trades_binance', 'bronze_trades_kraken', 'bronze_trades_coinbase', 'silver_trades',
                  'ohlcv_1m', 'ohlcv_5m', 'ohlcv_15m', 'ohlcv_30m', 'ohlcv_1h', 'ohlcv_1d']) AS t
ON CONFLICT (table_name) DO NOTHING;
