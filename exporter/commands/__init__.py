"""One module per `orchex` subcommand."""
