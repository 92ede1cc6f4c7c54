"""Minutiae extraction on real FVC2000 prints, and clear errors for everything that is not one."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edge.biometrics import finger
from edge.errors import InputError, QualityError

from .conftest import fvc_file


@pytest.mark.parametrize("db,shape", [("DB1_B", (300, 300)), ("DB2_B", (364, 256)), ("DB3_B", (478, 448)),
                                      ("DB4_B", (320, 240))])
def test_real_prints_give_plausible_minutiae(db, shape):
    image = finger.load_image(fvc_file(db, 101, 1))
    assert image.shape == shape and image.dtype == np.uint8
    t = finger.extract(image)
    assert 8 <= t.count <= 120, t.count  # a full 500-dpi print holds roughly 20-80 minutiae
    assert (t.width, t.height, t.dpi) == (shape[1], shape[0], 500)
    assert 0 <= t.quality <= 100
    assert np.all((t.x >= 0) & (t.x < t.width) & (t.y >= 0) & (t.y < t.height))
    assert np.all((t.angle >= 0) & (t.angle < 2 * np.pi))
    assert set(np.unique(t.kind)) <= {finger.ENDING, finger.BIFURCATION}
    assert np.all((t.minutia_quality >= 1) & (t.minutia_quality <= 100))


def test_sensor_format_4_bit_256x288():
    """The UART sensor's images: 256 x 288, 16 grey levels (4 bits per pixel)."""
    image = finger.load_image(fvc_file("DB2_B", 102, 1))[:288, :256]
    four_bit = (image >> 4) * 17
    t = finger.extract(four_bit)
    assert t.count >= 8 and (t.width, t.height) == (256, 288)


def test_extraction_is_deterministic():
    image = finger.load_image(fvc_file("DB1_B", 103, 2))
    assert finger.extract(image).same_minutiae(finger.extract(image.copy()))


def test_blank_image_is_a_quality_error():
    with pytest.raises(QualityError) as err:
        finger.extract(np.full((300, 300), 200, np.uint8))
    assert err.value.code == "quality.finger_blank"


def test_small_fingerprint_area_is_a_quality_error():
    image = np.full((300, 300), 255, np.uint8)
    image[130:170, 130:170] = finger.load_image(fvc_file("DB1_B", 101, 1))[130:170, 130:170]
    with pytest.raises(QualityError) as err:
        finger.extract(image)
    assert err.value.code == "quality.finger_small_area"


def test_too_few_minutiae_is_a_quality_error():
    # parallel straight ridges: a large, clear "print" with no minutiae at all
    yy, xx = np.mgrid[0:300, 0:300]
    stripes = (127 + 100 * np.sin(2 * np.pi * yy / 9.0)).astype(np.uint8)
    with pytest.raises(QualityError) as err:
        finger.extract(stripes)
    assert err.value.code == "quality.finger_too_few_minutiae"


def test_noise_is_a_quality_error():
    noise = np.random.default_rng(0).integers(0, 256, (300, 300), dtype=np.uint8)
    with pytest.raises(QualityError) as err:
        finger.extract(noise)
    assert err.value.code == "quality.finger_unclear"


@pytest.mark.parametrize("array,needle", [
    ("not an array", "numpy array"),
    (np.zeros((0, 0), np.uint8), "empty"),
    (np.zeros((10, 10), np.uint8), "size"),
    (np.zeros((5000, 100), np.uint8), "size"),
    (np.zeros((100, 100, 2), np.uint8), "2-D greyscale"),
    (np.full((100, 100), np.nan), "NaN"),
    (np.zeros((100, 100), bool), "pixel type"),
])
def test_bad_arrays_are_input_errors(array, needle):
    with pytest.raises(InputError, match=needle):
        finger.extract(array)


def test_bad_resolution_is_an_input_error():
    with pytest.raises(InputError, match="resolution"):
        finger.extract(np.zeros((100, 100), np.uint8), dpi=20)


def test_colour_and_float_images_are_accepted():
    grey = finger.load_image(fvc_file("DB1_B", 101, 1))
    reference = finger.extract(grey)
    colour = np.repeat(grey[:, :, None], 3, axis=2)
    assert finger.extract(colour).same_minutiae(reference)
    assert finger.extract(grey.astype(np.float64) / 255.0).count >= 8


def test_file_errors(tmp_path):
    empty = tmp_path / "empty.tif"
    empty.write_bytes(b"")
    text = tmp_path / "text.tif"
    text.write_text("this is not an image")
    good = fvc_file("DB1_B", 101, 1)
    truncated = tmp_path / "truncated.png"
    Image.open(good).save(tmp_path / "full.png")
    truncated.write_bytes((tmp_path / "full.png").read_bytes()[:300])
    cases = {tmp_path / "missing.tif": "input.not_found", empty: "input.empty", text: "input.unreadable_image",
             truncated: "input.unreadable_image", tmp_path: "input.not_found"}
    for path, code in cases.items():
        with pytest.raises(InputError) as err:
            finger.load_image(path)
        assert err.value.code == code, path


def test_huge_image_is_refused_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("L", (5000, 5000), 255).save(path)  # compresses to a few kB, decodes to 25 MB
    with pytest.raises(InputError) as err:
        finger.load_image(path)
    assert err.value.code == "input.bad_image_size"
