"""Record a terminal's device traffic and play it back to the real drivers.

The shipped scenarios with line faults are recorded while they play (the daemon on the simulator, through the
real drivers), written to a sealed file, read back and replayed: the real zfm driver, fed the recorded module
answers (garbage, corrupted checksums, the cable pulled), must send exactly the commands it sent when the
scenario ran and end each one the same way; the opencv driver decodes the recorded frames from an MJPEG
stream; the xfs4iot driver gets the recorded completions. No template ever reaches the file.
"""
from __future__ import annotations

import base64
import json

import pytest

from drivers.base import open_device
from edge.config import Config, _deep_merge, load_config
from edge.errors import StorageError
from edge.store import load_secrets
from edge.store.crypto import KeyRing, new_key
from simulator.recording import Recorder, load_recording, save_recording
from simulator.replay import replay
from simulator.rig import start_rig
from simulator.scenario import SCENARIO_DIR, run_scenario, shipped_scenarios


def _config(tmp_path) -> Config:
    base = load_config(env={})
    return Config.model_validate(_deep_merge(base.model_dump(mode="json"), {"paths": {"state_dir": str(tmp_path)}}))


SHIPPED = sorted(p.stem for p in shipped_scenarios())      # the single-terminal ones (fleet/ is a folder below)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_scenario_replays_to_the_real_drivers(name, tmp_path):
    cfg = _config(tmp_path / "deployment")
    result = run_scenario(SCENARIO_DIR / f"{name}.toml", base=cfg, state_dir=tmp_path / "scenario", record=True)
    assert result.ok, result.timeline()
    keyring = load_secrets(cfg).keyring()
    path = tmp_path / f"{name}.bgrec"
    summary = save_recording(result.recording, path, keyring, cfg.terminal_id)
    assert summary["sealed"] and summary["records"]["serial"] > 10 and summary["records"]["camera"] > 10

    # sealed like evidence: nothing readable in the file, and another deployment's key does not open it
    header = json.loads(path.read_text())
    assert header["sealed"] is True and "body" not in header
    ciphertext = base64.b64decode(header["ciphertext"])
    first_frame = base64.b64decode(result.recording.of("camera")[0]["jpeg"])
    assert first_frame[:2] == b"\xff\xd8" and first_frame[:256] not in ciphertext
    assert b'"records"' not in ciphertext
    with pytest.raises(StorageError):
        load_recording(path, KeyRing({"k-other": new_key()}, "k-other"))

    report = replay(load_recording(path, keyring))
    serial = report["serial"]
    assert serial["diverged"] == [], serial["diverged"]
    assert serial["answered"] == serial["recorded_commands"] > 0
    outcomes = [c["driver"] for c in serial["commands"]]
    assert any(o.startswith("image:") for o in outcomes), outcomes    # images went through the transfer code
    if name == "scanner_unplugged":                        # the driver met the pulled cable as a device error
        assert any(o.startswith("device.") for o in outcomes), outcomes
    else:                                                  # garbage and bad checksums were survived
        assert not any(o.startswith("device.") for o in outcomes), outcomes
    camera = report["camera"]
    assert camera["frames_read"] > 0 and camera["frame_shape"] == [480, 640, 3], camera
    dispenser = report.get("dispenser", {"diverged": [], "commands": [], "recorded_commands": 0})
    assert dispenser["diverged"] == [] and dispenser["recorded_commands"] == len(dispenser["commands"])
    # each command ended for the driver as it ended in the scenario (a refused replayed token as refused)
    assert all(c["driver"] == c["recorded"] for c in dispenser["commands"]), dispenser
    assert sum(c["command"] == "CashDispenser.Dispense" and c["driver"] == "success"
               for c in dispenser["commands"]) == len(result.ledger)


def test_templates_never_enter_a_recording(tmp_path):
    """A template uploaded from the module (UpChar) is redacted; the rest of the traffic stays."""
    cfg = _config(tmp_path)
    rig = start_rig(cfg, camera_transport="inprocess", fingerprint_source="synthetic")
    try:
        recorder = Recorder(rig).start()
        with open_device("fingerprint", "zfm", port=rig.fingerprint.port) as scanner:
            module = scanner.module
            module.gen_img()
            module.img2tz(1)
            template = module.up_char(1)
        recording = recorder.stop()
    finally:
        rig.close()
    assert len(template) >= 512
    serial = recording.of("serial")
    redacted = [r for r in serial if "redacted" in r]
    assert redacted and sum(r["redacted"] for r in redacted) >= len(template)
    carried = b"".join(base64.b64decode(r["data"]) for r in serial if "data" in r)
    assert template[:64] not in carried and template[-64:] not in carried
    assert any(r.get("command") == "UP_CHAR" for r in serial)       # the command itself is still there
    assert not recording.holds_samples                               # no image, no frame: a plain file
    path = tmp_path / "plain.bgrec"
    save_recording(recording, path, load_secrets(cfg).keyring(), cfg.terminal_id)
    assert json.loads(path.read_text())["sealed"] is False
    assert load_recording(path, None).records == recording.records
