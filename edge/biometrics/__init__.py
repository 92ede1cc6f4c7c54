"""Biometric core: pure functions from images/arrays to templates and comparison scores."""
