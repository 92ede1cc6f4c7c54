"""UART fingerprint modules (ZFM-20/60/70, R30x, R503, AS608).

- `protocol`: the wire codec (pure; shared with the simulator).
- `errors`: typed DeviceError subclasses.
- `zfm`: the pyserial driver (`ZfmModule`) and the `zfm` scanner backend (`ZfmScanner`).

May import: drivers.base, drivers.errors, edge.errors.
"""
