"""Bad inputs give clear, typed errors: never a crash."""
import io

import numpy as np
import pytest
from PIL import Image

from edge.biometrics.face.image import as_rgb, load_image
from edge.errors import InputError


def _jpeg(width=64, height=48) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def test_decodes_to_bgr(tmp_path):
    img = np.zeros((10, 20, 3), np.uint8)
    img[..., 0] = 255  # pure red in RGB
    path = tmp_path / "red.png"
    Image.fromarray(img).save(path)
    bgr = load_image(path)
    assert bgr.shape == (10, 20, 3) and bgr[0, 0].tolist() == [0, 0, 255]


@pytest.mark.parametrize("content,code", [
    (b"", "input.empty"),
    (b"this is not an image at all", "input.not_an_image"),
    (_jpeg()[:200], "input.corrupt_image"),
])
def test_bad_files(tmp_path, content, code):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(InputError) as err:
        load_image(path)
    assert err.value.code == code


def test_missing_file(tmp_path):
    with pytest.raises(InputError) as err:
        load_image(tmp_path / "nope.jpg")
    assert err.value.code == "input.not_found"


def test_directory_is_not_an_image(tmp_path):
    with pytest.raises(InputError) as err:
        load_image(tmp_path)
    assert err.value.code == "input.not_an_image"


def test_huge_image_refused_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("L", (10_000, 10_000)).save(path)
    with pytest.raises(InputError) as err:
        load_image(path)
    assert err.value.code == "input.image_too_large"
    assert err.value.details == {"width": 10_000, "height": 10_000}


def test_as_rgb_rejects_wrong_arrays():
    with pytest.raises(InputError):
        as_rgb(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(InputError):
        as_rgb(np.zeros((4, 4, 5), np.uint8))
    assert as_rgb(np.zeros((4, 4), np.uint8)).shape == (4, 4, 3)


def test_bomb_beyond_pillows_hard_limit_is_refused_as_too_large():
    buf = io.BytesIO()
    Image.new("L", (20_000, 20_000)).save(buf, "PNG")  # ~400 KB on disk, 400 M pixels decoded
    with pytest.raises(InputError) as err:
        load_image(buf.getvalue())
    assert err.value.code == "input.image_too_large"


def test_configured_limit_applies_to_bytes():
    with pytest.raises(InputError) as err:
        load_image(_jpeg(64, 48), max_pixels=64 * 48 - 1)
    assert err.value.code == "input.image_too_large"
    assert load_image(_jpeg(64, 48), max_pixels=64 * 48).shape == (48, 64, 3)


def test_exif_orientation_is_applied():
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    Image.new("RGB", (40, 20)).save(buf, "JPEG", exif=exif)
    assert load_image(buf.getvalue()).shape == (40, 20, 3)


def test_sixteen_bit_grey_is_scaled_not_clipped():
    buf = io.BytesIO()
    Image.fromarray(np.full((4, 4), 0x8000, np.uint16)).save(buf, "PNG")
    assert load_image(buf.getvalue())[0, 0].tolist() == [128, 128, 128]


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "1"])
def test_every_common_mode_becomes_bgr(mode):
    buf = io.BytesIO()
    Image.new(mode, (8, 6)).save(buf, "TIFF" if mode == "CMYK" else "PNG")
    out = load_image(buf.getvalue())
    assert out.shape == (6, 8, 3) and out.dtype == np.uint8
