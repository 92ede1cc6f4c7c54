"""The base of every configuration section (imports nothing of biogate).

Each package declares the section it reads beside its code (`edge.biometrics.config.FaceConfig`, ...),
so a lower layer never imports the whole configuration; `edge.config.Config` assembles the sections and
loads them from TOML and the environment.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A typed configuration section: unknown keys are refused, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
