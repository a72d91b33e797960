"""Alert sinks: NDJSON, JSON, CSV and the terminal table, each safe to show on a terminal."""
