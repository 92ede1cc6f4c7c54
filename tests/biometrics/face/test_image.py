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
