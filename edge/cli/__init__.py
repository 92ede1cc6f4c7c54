"""The `biogate` command line (typer). `app.py` holds the groups; each command module registers itself.

May import: every product package below it (edge.service, edge.evaluation, edge.config, ...). Never the
simulator: it adds its commands and its rig through entry points (edge.cli.plugins).
"""
