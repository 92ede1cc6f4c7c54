"""Device drivers: cameras, fingerprint scanners, cash dispensers, behind small interfaces.

Each kind of device has one abstract interface in `drivers.base` and any number of backends, found by name
(as python-can's `Bus`): the drivers' own in `drivers.base.BACKENDS`, plugins (the simulator) through the
`biogate.backends` entry points, so the simulator and real hardware are interchangeable. Drivers raise
`drivers.errors.DeviceError` subclasses (codes `device.*`, no transport). Every deadline is a
`drivers.deadline.Deadline` (0 seconds: one non-blocking try).

May import: edge.errors (the dependency-free error root) and nothing else of biogate.
"""
