"""Reference systems that biogate is measured against. Benchmark-only: never imported at run time."""
