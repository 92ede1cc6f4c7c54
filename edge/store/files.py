"""File modes of the terminal's state: the folder 0700, every file in it 0600, key files refused when loose.

    private_dir(state_dir)            # create (or tighten) the folder to 0700
    private_file(db_path)             # create empty if absent, tighten to 0600 (SQLite then gives -wal / -shm
                                      #   the database file's own mode)
    check_private(secrets_path)       # ConfigError when group or others may read or write a key file

A key file another account can read is refused, not silently tightened: it may already have been copied,
so the operator has to decide (rotate the keys) and fix the mode.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from edge.errors import ConfigError

DIR_MODE, FILE_MODE = 0o700, 0o600


def private_dir(path: Path) -> Path:
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        os.chmod(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """`path` exists with mode 0600 (created empty if absent; an existing file is tightened, never truncated)."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return path


def tighten(path: Path) -> None:
    """Mode 0600 for a file that may or may not exist (SQLite's -wal and -shm left by an older version)."""
    try:
        os.chmod(path, FILE_MODE)
    except FileNotFoundError:
        pass


def check_private(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(f"{path} is mode {mode:04o}: other accounts may read or change these keys; "
                          f"refusing to load it. Rotate the keys if it may have been copied, then "
                          f"`chmod 600 {path}`")
