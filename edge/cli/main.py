"""Entry point of the `biogate` console script: the app plus every command module."""
from __future__ import annotations

from edge.cli.app import app

# Each import registers its commands on the groups defined in edge.cli.app.
from edge.cli import face_commands  # noqa: F401,E402
from edge.cli import finger_commands  # noqa: F401,E402
from edge.cli import service_commands  # noqa: F401,E402
from edge.cli import decision_commands  # noqa: F401,E402
from edge.cli import pad_commands  # noqa: F401,E402
from edge.cli import operator_commands  # noqa: F401,E402
from edge.cli import registry_commands  # noqa: F401,E402
from edge.cli import search_commands  # noqa: F401,E402
from edge.cli.plugins import register_commands  # noqa: E402

register_commands(app)   # installed plugins: the simulator's `sim` group and `demo`

if __name__ == "__main__":
    app()
