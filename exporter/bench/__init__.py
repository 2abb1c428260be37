"""`orchex bench`: the routing benchmark (timings and checks), its report and its push."""
