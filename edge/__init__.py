"""biogate edge: the biometric core, decisions, the service and the command line.

One way through the house (the layers contract in pyproject.toml, checked by `lint-imports` in `make test`),
top to bottom: edge.cli -> edge.service (and edge.evaluation) -> edge.config -> xfs4iot_bridge ->
edge.decision -> edge.biometrics | edge.store -> edge.audit -> edge.models -> drivers -> edge.errors |
edge.sections. A package imports only what stands below it; the simulator and the tests stand above all.
"""
