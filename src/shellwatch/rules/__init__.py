"""Rule files in, validated :class:`~shellwatch.rules.model.Rule` objects out."""
