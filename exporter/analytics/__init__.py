"""`orchex analytics`: the legacy reports from a Tally, pure (no I/O)."""
