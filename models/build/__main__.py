"""`python -m models.build`: see models/build/__init__.py."""
import sys

from models.build.pipeline import main

sys.exit(main())
