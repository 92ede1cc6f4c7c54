"""The `biogate` command line (typer). `app.py` holds the groups; each command module registers itself."""
