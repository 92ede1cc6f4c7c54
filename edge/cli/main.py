"""Entry point of the `biogate` console script: the app plus every command module."""
from __future__ import annotations

from edge.cli.app import app

# Each import registers its commands on the groups defined in edge.cli.app.
from edge.cli import face_commands  # noqa: F401,E402
from edge.cli import finger_commands  # noqa: F401,E402
from edge.cli import service_commands  # noqa: F401,E402
from edge.cli import decision_commands  # noqa: F401,E402
from edge.cli import sim_commands  # noqa: F401,E402
from edge.cli import pad_commands  # noqa: F401,E402

if __name__ == "__main__":
    app()
