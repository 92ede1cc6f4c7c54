"""Reference systems that biogate is measured against. Benchmark-only: never imported at run time.

May import: as edge.evaluation (peers are benchmark-only, imported inside functions).
"""
