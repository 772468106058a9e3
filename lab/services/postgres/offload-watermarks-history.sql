-- The runbook's described layout (append-only history, newest row = watermark). Not K2's real schema:
-- the lab offers it because the runbook's Scenario 4 is written against it.
CREATE TABLE IF NOT EXISTS offload_watermarks (
    id BIGSERIAL PRIMARY KEY,
    table_name TEXT NOT NULL,
    max_timestamp TIMESTAMPTZ NOT NULL,
    sequence_number BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_watermarks_table_created ON offload_watermarks (table_name, created_at DESC);
INSERT INTO offload_watermarks (table_name, max_timestamp, sequence_number)
SELECT t, '1970-01-01 00:00:00+00', 0
FROM unnest(ARRAY['bronze_trades_binance', 'bronze_trades_kraken', 'bronze_trades_coinbase', 'silver_trades',
                  'ohlcv_1m', 'ohlcv_5m', 'ohlcv_15m', 'ohlcv_30m', 'ohlcv_1h', 'ohlcv_1d']) AS t
WHERE NOT EXISTS (SELECT 1 FROM offload_watermarks);
