"""The console face: one module per ``surgicalai`` subcommand (``HELP``, ``add_arguments``, ``run``)."""
