"""The virtual camera: scripted customers and attacks, served in-process or as a network camera.

- `virtual`: `VirtualCamera`, camera backend `simulated` (scripts, challenge channel, faults);
- `mjpeg`: `MjpegServer`, the same frames as MJPEG over HTTP with /prompt, /present and /fault;
- `presentations`, `scene`, `subjects`, `sources`: what stands in front of the camera and where faces come from.

May import: as the simulator package (everything of the product).
"""
