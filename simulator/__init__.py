"""The hardware simulator: virtual devices speaking the real wire protocols, and scenarios.

    rig.py        the three devices on their transports, and their control service (`control/`: HTTP API,
                  event stream, `SimClient`, `biogate sim control`)
    scenario.py   declarative scenarios, played through the daemon's API and the control API
    recording.py  device traffic captured with timing (`biogate sim record`); replay.py plays it back to
                  the real drivers (`biogate sim replay`)

May import: everything of the product (edge, drivers, xfs4iot_bridge): it stands above it and drives it
through its real transports and public entry points. The product never imports it (entry points: pyproject.toml).
"""
