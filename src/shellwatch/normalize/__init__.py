"""Normalizers: raw records in, flat ECS events out, one module per telemetry family.

The entry point is :func:`shellwatch.normalize.dispatch.normalize`. Raw Windows events (``windows_event``),
OTRF flat records and raw Winlogbeat documents share the provider mappings (``sysmon``, ``security``), which
follow Elastic's ingest pipelines; ingested ECS documents pass through (``ecs_document``).
"""
