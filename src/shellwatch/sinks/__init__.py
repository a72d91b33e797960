"""Where alerts go once detected: the sink contract (:mod:`.base`) and its implementations."""
