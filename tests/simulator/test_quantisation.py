"""Prints read through the product's driver from the virtual module decide like the files they came from.

The sensor path (simulator.fingerprint.images): fit the print to 256 x 288 at 500 dpi (centre crop, white
padding), quantise to 4 bits, send with UpImage; the driver expands each level to level x 17. Two
effects can move a comparison score: the crop (less finger area) and the quantisation (16 grey
levels). The decisions of the host matcher (edge.biometrics.finger: extract, compare, DEFAULT_THRESHOLD)
are compared pair by pair on FVC2000 DB1_B:

- quantisation alone: the fitted 8-bit image vs the image the driver returns;
- the whole sensor path: the source file as it is vs the image the driver returns.

A decision may flip only for pairs whose score sits near the threshold. Figures measured on the whole
of DB1_B (80 prints, 3,160 pairs, 280 genuine) are in the slow test's output and the simulator report.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from drivers.base import open_device
from drivers.fingerprint.protocol import quantize_to_nibbles
from edge.biometrics.finger import DEFAULT_THRESHOLD, compare, extract, load_image
from simulator.fingerprint import VirtualModule, images
from tests.conftest import require_data

pytestmark = pytest.mark.timeout(900)

QUANTISATION_MARGIN = 2.5  # log10-LR units: a flip from quantisation alone must lie this close to the threshold
# The crop to the sensor window can remove most of the area two impressions share, so a mated pair may
# lose any amount of score through it (a genuine decision flipping to non-match at any distance is the
# price of a small sensor); what the crop must never do is create a confident match: a pair that only
# matches through the sensor must lie within the quantisation margin of the threshold.


def capture_all(paths: list[Path]) -> list[np.ndarray]:
    """Each print placed on a virtual ZFM module and read back through the `zfm` driver."""
    module = VirtualModule("zfm", "none").start()
    try:
        with open_device("fingerprint", "zfm", port=module.port, timeout=5.0) as scanner:
            out = []
            for path in paths:
                module.place(str(path))
                out.append(scanner.capture(timeout=5.0))
            return out
    finally:
        module.close()


@pytest.mark.parametrize(
    "db, crop",
    [
        ("DB1_B", (6, 22)),  # 300 x 300: crop 12 rows and 44 columns
        ("DB2_B", (38, 0)),  # 256 x 364: crop 76 rows
        ("DB3_B", (95, 96)),  # 448 x 478
        ("DB4_B", (16, -8)),  # 240 x 320: crop 32 rows, pad 8 white columns each side
    ],
)
@pytest.mark.timeout(120)
def test_sensor_image_is_the_documented_pipeline_pixel_for_pixel(db, crop):
    path = require_data("fingerprints", "fvc2000", db) / "103_4.tif"
    source = load_image(path)
    (image,) = capture_all([path])
    assert image.shape == (288, 256) and image.dtype == np.uint8
    assert np.array_equal(image, images.levels_to_grey(images.sensor_levels(source, 256, 288)))
    # the same, restated from the docstring's steps: centre crop / white pad, nearest of 16 levels, x 17
    top, left = crop
    window = source[top : top + 288]
    window = window[:, left : left + 256] if left >= 0 else np.pad(window, ((0, 0), (-left, -left)), constant_values=255)
    assert np.array_equal(image, ((window.astype(np.int32) + 8) // 17 * 17).astype(np.uint8))
    assert np.array_equal(image, quantize_to_nibbles(window) * np.uint8(17))


def decisions(db: str, fingers: range, impressions: range) -> dict:
    root = require_data("fingerprints", "fvc2000", db)
    keys = [(f, i) for f in fingers for i in impressions]
    paths = [root / f"{f}_{i}.tif" for f, i in keys]
    sources = [load_image(p) for p in paths]
    through_driver = capture_all(paths)
    versions = {
        "source": [extract(s) for s in sources],
        "fitted": [extract(images.fit_to_sensor(s, 256, 288)) for s in sources],
        "sensor": [extract(img) for img in through_driver],
    }
    pairs = list(itertools.combinations(range(len(keys)), 2))
    scores = {name: np.array([compare(t[a], t[b]) for a, b in pairs]) for name, t in versions.items()}
    genuine = np.array([keys[a][0] == keys[b][0] for a, b in pairs])
    return {"scores": scores, "genuine": genuine, "pairs": len(pairs)}


def check_agreement(result: dict, reference: str, min_agreement: float, *, margin: float,
                    crop_may_lose_matches: bool = False) -> str:
    ref = result["scores"][reference]
    sensor = result["scores"]["sensor"]
    same = (ref >= DEFAULT_THRESHOLD) == (sensor >= DEFAULT_THRESHOLD)
    flips = np.nonzero(~same)[0]
    bounded = flips[sensor[flips] >= DEFAULT_THRESHOLD] if crop_may_lose_matches else flips
    worst = float(np.abs(ref[flips] - DEFAULT_THRESHOLD).max()) if flips.size else 0.0
    worst_bounded = float(np.abs(ref[bounded] - DEFAULT_THRESHOLD).max()) if bounded.size else 0.0
    genuine = result["genuine"]
    report = (
        f"{reference} vs sensor: {result['pairs']} pairs ({int(genuine.sum())} genuine), "
        f"agreement {same.mean():.4f}, {flips.size} flips ({bounded.size} held to the margin), farthest flip "
        f"{worst:.2f} from the threshold; "
        f"FNMR {np.mean(ref[genuine] < DEFAULT_THRESHOLD):.3f} -> {np.mean(sensor[genuine] < DEFAULT_THRESHOLD):.3f}, "
        f"FMR {np.mean(ref[~genuine] >= DEFAULT_THRESHOLD):.4f} -> {np.mean(sensor[~genuine] >= DEFAULT_THRESHOLD):.4f}"
    )
    print(report)
    assert same.mean() >= min_agreement, report
    assert worst_bounded <= margin, report
    return report


@pytest.mark.timeout(600)
def test_match_decisions_survive_the_sensor_on_a_db1_subset():
    # 5 fingers x 4 impressions: 190 pairs, 30 genuine
    result = decisions("DB1_B", range(101, 106), range(1, 5))
    check_agreement(result, "fitted", 0.95, margin=QUANTISATION_MARGIN)
    check_agreement(result, "source", 0.95, margin=QUANTISATION_MARGIN, crop_may_lose_matches=True)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_match_decisions_survive_the_sensor_on_all_of_db1():
    result = decisions("DB1_B", range(101, 111), range(1, 9))
    check_agreement(result, "fitted", 0.98, margin=QUANTISATION_MARGIN)
    check_agreement(result, "source", 0.98, margin=QUANTISATION_MARGIN, crop_may_lose_matches=True)
