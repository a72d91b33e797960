"""Rule files in, validated :class:`~shellwatch.rules.model.Rule` objects out.

* :mod:`~shellwatch.rules.loader` -- ``load_rules(paths)``, ``load_rule_file(path)``, ``load_bundled_rules()``:
  files and folders in, a :class:`~shellwatch.rules.outcome.LoadResult` (one outcome per rule: ok, unsupported or
  error, with the reason and where) out.
* one module per format: :mod:`~shellwatch.rules.elastic_toml`, :mod:`~shellwatch.rules.kibana_json` (rule JSON and
  saved-objects NDJSON, both through :mod:`~shellwatch.rules.kibana_schema`), :mod:`~shellwatch.rules.sigma_yaml`.
* :mod:`~shellwatch.rules.attack` -- ATT&CK names offline (:mod:`~shellwatch.rules.attack_data`) and Sigma tags ->
  Kibana threat.
* ``pack/`` -- the rule pack shipped with shellwatch (the two seed rules; see its README and NOTICE).
"""
