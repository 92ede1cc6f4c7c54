"""Liveness (presentation attack detection) for the face path: an active challenge over the camera
stream, a passive detector on single frames, and physical tests on the motion; see checker.py.

May import: as edge.biometrics.
"""
from edge.biometrics.liveness.checker import REASONS, LivenessChecker, LivenessResult

__all__ = ["REASONS", "LivenessChecker", "LivenessResult"]
