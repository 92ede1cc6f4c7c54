"""Camera backends: `opencv` (device index, video file, image folder, RTSP/HTTP URL).

The simulated camera lives in `simulator.camera` and registers itself as backend `simulated`.
"""
