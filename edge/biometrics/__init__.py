"""Biometric core: pure functions from images/arrays to templates and comparison scores.

May import: edge.audit, edge.models, drivers (device interfaces and errors, for the liveness check's camera),
edge.errors, edge.sections. Never edge.config, edge.decision, edge.store, edge.service or above: a section of
the configuration comes in as an argument (`edge.biometrics.config`).
"""
