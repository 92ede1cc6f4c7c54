"""Device drivers: cameras, fingerprint scanners, cash dispensers, behind small interfaces.

Each kind of device has one abstract interface in `drivers.base` and any number of backends,
registered by name (as python-can's `Bus`): configuration picks the backend, so the simulator and
real hardware are interchangeable. Drivers raise `edge.errors.DeviceError` subclasses. Every wait
is a `drivers.deadline.Deadline` (0 seconds: one non-blocking try).
"""
