"""Live detection (``shellwatch watch``): follow growing logs, run each rule on its schedule, deliver alerts.

:mod:`.state` owns the SQLite database that makes a restart lose and duplicate nothing, :mod:`.follow` reads what
each input gained since its stored position, :mod:`.matching` turns records into rule matches with the hunt's
readers, normalizers and rule set, :mod:`.schedule` decides when a rule runs and what Kibana would call a gap, and
:mod:`.runner` ties them together in the order that keeps every commit safe against ``kill -9``.
"""
