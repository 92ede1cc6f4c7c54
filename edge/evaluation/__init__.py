"""Measuring biometric performance the ISO/IEC 19795-1 way (FMR, FNMR, EER, DET), and synthetic data
for benchmarks.

May import: edge.config and everything below it (edge.biometrics, edge.decision, ...). Never edge.service,
edge.cli or the simulator.
"""
