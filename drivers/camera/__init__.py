"""Camera backends: `opencv` (device index, video file, image folder, RTSP/HTTP URL).

The simulated cameras live in `simulator.camera` and register themselves (entry points `camera.simulated`,
`camera.rig`). May import: drivers.base, drivers.errors, edge.errors.
"""
