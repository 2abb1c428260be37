"""Reading selection logs: row validation, aggregation (Tally) and file following, shared by the
exporter's routing collector and `orchex analytics` so that both report the same figures."""
