"""`biogate face compare`, `eval faces`, `eval face-threshold`, `bench face`: contract keys, clear errors."""
from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from edge.cli.main import app

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "models" / "artifacts" / "examples"
runner = CliRunner()

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module", autouse=True)
def built_models():
    if not (EXAMPLES / "obama.jpg").is_file():
        pytest.fail("model artefacts missing: run `make models`", pytrace=False)


def run(*args: str):
    return runner.invoke(app, list(args), env={"BIOGATE_CONFIG": ""})


def one_json_line(stdout: str) -> dict:
    lines = stdout.strip().splitlines()
    assert len(lines) == 1, stdout
    return json.loads(lines[0])


def test_compare_same_and_different_people():
    same = one_json_line(run("face", "compare", str(EXAMPLES / "obama.jpg"), str(EXAMPLES / "obama2.jpg"), "--json").stdout)
    assert same["decision"] == "same" and same["same"] is True and same["distance"] < same["threshold"]
    assert [i["faces"] for i in same["images"]] == [1, 1] and same["images"][0]["findings"] == []
    assert set(same["images"][0]["quality"]) == {"face_px", "brightness", "sharpness", "yaw_deg", "roll_deg",
                                                 "motion_blur"}
    text = run("face", "compare", str(EXAMPLES / "obama.jpg"), str(EXAMPLES / "biden.jpg"))
    assert text.exit_code == 0 and "DIFFERENT person" in text.stdout and "no quality findings" in text.stdout


def _png(size) -> bytes:
    buf = io.BytesIO()
    Image.new("L", size, 128).save(buf, "PNG")
    return buf.getvalue()


BAD_INPUTS = {
    "empty": (b"", "input.empty"),
    "not an image": (b"%PDF-1.4 definitely not a picture", "input.not_an_image"),
    "corrupt": ((EXAMPLES / "obama.jpg").read_bytes()[:2000] if (EXAMPLES / "obama.jpg").is_file() else b"",
                "input.corrupt_image"),
    "huge": (_png((10_000, 10_000)), "input.image_too_large"),
    "faceless": (_png((640, 480)), "quality.no_face"),
}


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
def test_bad_inputs_are_clear_errors(tmp_path, kind):
    content, code = BAD_INPUTS[kind]
    bad = tmp_path / "probe.jpg"
    bad.write_bytes(content)
    result = run("face", "compare", str(EXAMPLES / "obama.jpg"), str(bad), "--json")
    assert result.exit_code == 2
    error = one_json_line(result.stdout)["error"]
    assert error["code"] == code and str(bad) in error["message"]
    text = run("face", "compare", str(bad), str(EXAMPLES / "obama.jpg"))
    assert text.exit_code == 2 and text.stdout == ""
    assert text.stderr.startswith("error: ") and f"({code})" in text.stderr and "Traceback" not in text.stderr


def test_missing_file_and_strict_mode(tmp_path):
    missing = run("face", "compare", str(tmp_path / "nope.jpg"), str(EXAMPLES / "obama.jpg"), "--json")
    assert missing.exit_code == 2 and one_json_line(missing.stdout)["error"]["code"] == "input.not_found"
    # Two faces side by side: compared by default (the most prominent face), refused with --strict.
    obama, biden = Image.open(EXAMPLES / "obama.jpg"), Image.open(EXAMPLES / "biden.jpg")
    biden = biden.resize((biden.width * obama.height // biden.height, obama.height))
    both = Image.new("RGB", (obama.width + biden.width, obama.height))
    both.paste(obama, (0, 0))
    both.paste(biden, (obama.width, 0))
    both.save(tmp_path / "both.jpg")
    lenient = one_json_line(run("face", "compare", str(EXAMPLES / "obama2.jpg"), str(tmp_path / "both.jpg"), "--json").stdout)
    assert lenient["same"] and [f["code"] for f in lenient["images"][1]["findings"]] == ["quality.multiple_faces"]
    strict = run("face", "compare", str(EXAMPLES / "obama2.jpg"), str(tmp_path / "both.jpg"), "--json", "--strict")
    assert strict.exit_code == 2 and one_json_line(strict.stdout)["error"]["code"] == "quality.multiple_faces"


@pytest.fixture
def mini_lfw(tmp_path) -> Path:
    layout = {"Barack_Obama": ["obama.jpg", "obama2.jpg", "obama3.jpg"], "Joe_Biden": ["biden.jpg"]}
    for name, files in layout.items():
        (tmp_path / "lfw" / "images" / name).mkdir(parents=True)
        for i, f in enumerate(files, 1):
            shutil.copy(EXAMPLES / f, tmp_path / "lfw" / "images" / name / f"{name}_{i:04d}.jpg")
    pairs = tmp_path / "lfw" / "pairs.txt"
    pairs.write_text("2\t2\n"
                     "Barack_Obama\t1\t2\nBarack_Obama\t1\t3\nBarack_Obama\t1\tJoe_Biden\t1\nBarack_Obama\t2\tJoe_Biden\t1\n"
                     "Barack_Obama\t2\t3\nBarack_Obama\t3\t1\nBarack_Obama\t3\tJoe_Biden\t1\nJoe_Biden\t1\tBarack_Obama\t1\n")
    return pairs


def test_eval_faces_contract(mini_lfw, tmp_path):
    result = run("eval", "faces", "--pairs", str(mini_lfw), "--json", "--det-plot", str(tmp_path / "det.png"))
    assert result.exit_code == 0, result.stderr
    report = one_json_line(result.stdout)
    assert list(report) == ["pairs", "accuracy", "eer", "fnmr_at_fmr_1e-3", "threshold", "failures_to_acquire"]
    assert report["pairs"] == 8 and report["accuracy"] == 1.0 and report["failures_to_acquire"] == 0
    assert (tmp_path / "det.png").read_bytes()[:4] == b"\x89PNG"
    # --images overrides the default images/ beside the pairs file.
    moved = tmp_path / "moved"
    shutil.move(str(mini_lfw.parent / "images"), moved)
    assert one_json_line(run("eval", "faces", "--pairs", str(mini_lfw), "--images", str(moved), "--json").stdout)["accuracy"] == 1.0
    missing = run("eval", "faces", "--pairs", str(mini_lfw), "--json")
    assert missing.exit_code == 0 and one_json_line(missing.stdout)["failures_to_acquire"] == 4
    text = run("eval", "faces", "--pairs", str(tmp_path / "absent.txt"))
    assert text.exit_code == 2 and "input.not_found" in text.stderr


def test_eval_face_threshold(mini_lfw):
    result = run("eval", "face-threshold", "--pairs", str(mini_lfw), "--json")
    assert result.exit_code == 0, result.stderr
    report = one_json_line(result.stdout)
    assert [f["fold"] for f in report["folds"]] == [1, 2] and report["cv_accuracy"] == 1.0
    assert 0.3 < report["threshold"] < 1.0


@pytest.mark.timeout(300)
def test_bench_face_contract():
    result = run("bench", "face", "--json", "--frames", "3", "--repeats", "1")
    assert result.exit_code == 0, result.stderr
    report = one_json_line(result.stdout)
    assert {"ours_ms", "face_recognition_ms", "speedup", "ours_embed_ms", "dlib_embed_ms", "embed_speedup"} <= set(report)
    assert report["frames"] == 3 and report["ours_faces"] == report["face_recognition_faces"] == 3
    assert report["speedup"] == pytest.approx(report["face_recognition_ms"] / report["ours_ms"], rel=0.01)


def test_the_console_script_prints_one_json_line():
    """The installed `biogate` entry point (a real process): stdout holds exactly the JSON object."""
    biogate = Path(sys.executable).with_name("biogate")
    if not biogate.exists():
        pytest.skip(f"console script not installed at {biogate} (run `make setup`)")
    out = subprocess.run([str(biogate), "face", "compare", str(EXAMPLES / "obama.jpg"), str(EXAMPLES / "obama3.jpg"),
                          "--json"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert one_json_line(out.stdout)["decision"] == "same"


def test_bench_detector_reports_both_frame_sizes():
    report = one_json_line(run("bench", "detector", "--json", "--repeats", "1").stdout)
    assert set(report["frames"]) == {"640x480", "1280x720"}
    for row in report["frames"].values():
        assert {"finder_face_100px_ms", "finder_face_close_ms", "finder_empty_ms", "short_range_ms",
                "full_range_ms"} <= set(row)
        assert all(v > 0 for v in row.values())
