"""The ``llada`` subcommands, one module each (torch and the model are imported inside their bodies)."""
