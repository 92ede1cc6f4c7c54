"""The virtual fingerprint module: a ZFM/R30x, AS608 or R503 on a pseudo-terminal for the real driver.

    from simulator.fingerprint import start_module
    module = start_module(profile="zfm", source="default", library_path=None, faults=None, seed=0)
    scanner = open_device("fingerprint", "zfm", port=module.port)
    ...
    module.close()

- `module`: `VirtualModule` and `start_module`: the three parts below wired to a serving thread;
- `line`: `PtyLine`, the pseudo-terminal and its stable port name (also used by the driver tests);
- `device`: `FingerprintDevice`, the command set, RAM, flash and sensor: packets in, frames out;
- `faults`: `Fault`, `RandomFaults`, `parse_faults` (declarative fault records) and `FaultFilter`,
  which applies them between the device and the line;
- `images`: fitting prints to the sensor, image sources (folder, synthetic, messy, none);
- `features`: the emulator's own character files and scores;
- `flash`: the persisted library, notepad and settings;
- `profiles`: per-model instruction sets and reply lengths.

May import: as the simulator package (everything of the product).
"""
from simulator.fingerprint.faults import Fault, RandomFaults, parse_faults
from simulator.fingerprint.module import VirtualModule, start_module

__all__ = ["Fault", "RandomFaults", "VirtualModule", "parse_faults", "start_module"]
