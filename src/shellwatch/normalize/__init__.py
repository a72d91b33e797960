"""Normalizers: raw records in, flat ECS events out, one module per telemetry family."""
