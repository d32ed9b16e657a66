from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from PIL import Image, ImageFilter

from smpp.features.schema import IMAGE_FEATURE_COLUMNS
from smpp.images.features import image_features, image_features_frame


@pytest.fixture
def save(tmp_path):
    def write(image: Image.Image, name: str, fmt: str = "PNG") -> str:
        path = tmp_path / name
        image.save(path, format=fmt)
        return str(path)

    return write


def half_and_half(size, left, right) -> Image.Image:
    image = Image.new("RGB", size, left)
    image.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return image


def test_black_image_is_all_zero_but_geometry(save):
    features = image_features(save(Image.new("RGB", (64, 32)), "black.png"))
    assert list(features) == IMAGE_FEATURE_COLUMNS
    assert all(isinstance(v, float) for v in features.values())
    for name in [
        "img_brightness",
        "img_contrast",
        "img_colourfulness",
        "img_hue_count",
        "img_colour_entropy",
        "img_sharpness",
        "img_edge_offset",
    ]:
        assert features[name] == pytest.approx(0.0, abs=1e-9), name
    assert (features["img_width"], features["img_height"], features["img_aspect_ratio"]) == (64.0, 32.0, 2.0)


def test_half_black_half_white_brightness_contrast_entropy(save):
    features = image_features(save(half_and_half((100, 50), (0, 0, 0), (255, 255, 255)), "half.png"))
    assert features["img_brightness"] == pytest.approx(0.5, abs=1e-6)
    assert features["img_contrast"] == pytest.approx(0.5, abs=1e-6)
    assert features["img_colour_entropy"] == pytest.approx(1.0, abs=1e-9)  # two equal colours: 1 bit
    assert features["img_sharpness"] > 0
    assert features["img_edge_offset"] == pytest.approx(0.0, abs=0.02)  # the edge runs down the middle
    white = image_features(save(Image.new("RGB", (10, 10), (255, 255, 255)), "white.png"))
    assert white["img_brightness"] == pytest.approx(1.0) and white["img_contrast"] == pytest.approx(0.0)


def test_colourfulness_and_hue_count(save):
    red = image_features(save(Image.new("RGB", (32, 32), (255, 0, 0)), "red.png"))
    grey = image_features(save(Image.new("RGB", (32, 32), (128, 128, 128)), "grey.png"))
    four = Image.new("RGB", (40, 40), (220, 0, 0))
    four.paste((0, 200, 0), (20, 0, 40, 20))
    four.paste((0, 0, 220), (0, 20, 20, 40))
    four.paste((220, 220, 0), (20, 20, 40, 40))
    quadrants = image_features(save(four, "four.png"))
    assert grey["img_colourfulness"] == pytest.approx(0.0, abs=1e-9)
    # Hasler & Süsstrunk on 0-255: a flat pure red has rg=255, yb=127.5, so M = 0.3 * hypot(...)
    assert red["img_colourfulness"] == pytest.approx(0.3 * math.hypot(255, 127.5), rel=1e-6)
    assert quadrants["img_colourfulness"] > red["img_colourfulness"] > grey["img_colourfulness"]
    deep_red = image_features(save(Image.new("RGB", (32, 32), (200, 0, 0)), "deep_red.png"))
    # Ke et al. count only pixels with saturation > 0.2 and 0.15 < value < 0.95: pure red is too bright
    assert (grey["img_hue_count"], red["img_hue_count"]) == (0.0, 0.0)
    assert (deep_red["img_hue_count"], quadrants["img_hue_count"]) == (1.0, 4.0)


def test_sharpness_drops_with_blur_and_entropy_rises_with_noise(save):
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8), "RGB")
    sharp = image_features(save(noise, "noise.png"))
    blurred = image_features(save(noise.filter(ImageFilter.GaussianBlur(3)), "blurred.png"))
    two_colours = image_features(save(half_and_half((128, 128), (0, 0, 0), (255, 255, 255)), "two.png"))
    assert sharp["img_sharpness"] > blurred["img_sharpness"] + 1.0
    assert sharp["img_colour_entropy"] > 8.0 > two_colours["img_colour_entropy"]


def test_edge_blob_in_corner_is_further_off_centre(save):
    corner = Image.new("RGB", (120, 120))
    corner.paste((255, 255, 255), (5, 5, 25, 25))
    centred = Image.new("RGB", (120, 120))
    centred.paste((255, 255, 255), (50, 50, 70, 70))
    corner_offset = image_features(save(corner, "corner.png"))["img_edge_offset"]
    centred_offset = image_features(save(centred, "centred.png"))["img_edge_offset"]
    assert centred_offset == pytest.approx(0.0, abs=0.02)
    assert corner_offset > 0.6
    assert 0.0 <= corner_offset <= 1.0


def test_geometry_and_size_come_from_the_stored_image_not_the_downscaled_copy(save, tmp_path):
    rng = np.random.default_rng(1)
    path = save(Image.fromarray(rng.integers(0, 256, (300, 900, 3), dtype=np.uint8), "RGB"), "big.jpg", "JPEG")
    features = image_features(path)
    assert (features["img_width"], features["img_height"]) == (900.0, 300.0)
    assert features["img_aspect_ratio"] == pytest.approx(3.0)
    assert features["img_file_kb"] == pytest.approx((tmp_path / "big.jpg").stat().st_size / 1024)


def test_frame_has_nan_rows_for_missing_and_unreadable(save, tmp_path, caplog):
    good = save(Image.new("RGB", (20, 10), (10, 200, 30)), "good.png")
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"<html>not an image</html>")
    with caplog.at_level(logging.WARNING, logger="smpp.images.features"):
        frame = image_features_frame([good, None, str(tmp_path / "gone.jpg"), str(garbage), good, float("nan")])
    assert list(frame.columns) == IMAGE_FEATURE_COLUMNS
    assert (frame.dtypes == "float64").all()
    assert frame.iloc[[1, 2, 3, 5]].isna().all().all()
    assert frame.iloc[[0, 4]].notna().all().all()
    assert frame.loc[0, "img_width"] == 20.0 and frame.loc[4, "img_aspect_ratio"] == 2.0
    assert any("garbage.jpg" in r.getMessage() for r in caplog.records)
    assert any("gone.jpg" in r.getMessage() for r in caplog.records)
    empty = image_features_frame([])
    assert empty.shape == (0, len(IMAGE_FEATURE_COLUMNS)) and list(empty.columns) == IMAGE_FEATURE_COLUMNS
