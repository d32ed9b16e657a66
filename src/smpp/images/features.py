"""Hand-crafted image features (numpy + Pillow), keys exactly smpp.features.schema.IMAGE_FEATURE_COLUMNS.

Pixels are read as stored (the fetch stage has already applied EXIF orientation) and measured on
a copy downscaled to FEATURE_SIDE on the longest side; width, height and file size come from the
stored image. Scales: brightness and contrast on luma in [0, 1]; colourfulness on 0-255 RGB as
in Hasler & Süsstrunk (2003), so their thresholds (e.g. ~33 "moderately colourful") apply;
sharpness is log1p of the variance of the Laplacian of 0-255 luma.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from smpp.features.schema import IMAGE_FEATURE_COLUMNS

logger = logging.getLogger(__name__)

FEATURE_SIDE = 256
HUE_BINS = 20
HUE_BIN_SHARE = 0.05  # a hue bin counts when it holds more than 5% of the eligible pixels
# Ke, Tang & Jing (2006): hue is only meaningful for saturated pixels that are neither too dark nor too bright.
HUE_MIN_SATURATION = 0.2
HUE_VALUE_RANGE = (0.15, 0.95)
ENTROPY_LEVELS = 8  # per channel: 512 colour bins
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601


def _colourfulness(rgb255: np.ndarray) -> float:
    red, green, blue = rgb255[..., 0], rgb255[..., 1], rgb255[..., 2]
    rg = red - green
    yb = 0.5 * (red + green) - blue
    spread = math.hypot(float(rg.std()), float(yb.std()))
    centre = math.hypot(float(rg.mean()), float(yb.mean()))
    return spread + 0.3 * centre


def _hue_count(small: Image.Image) -> float:
    hsv = np.asarray(small.convert("HSV"), dtype=np.int64)  # each channel 0-255
    hue = hsv[..., 0]
    saturation, value = hsv[..., 1] / 255.0, hsv[..., 2] / 255.0
    eligible = (saturation > HUE_MIN_SATURATION) & (value > HUE_VALUE_RANGE[0]) & (value < HUE_VALUE_RANGE[1])
    total = int(eligible.sum())
    if total == 0:
        return 0.0
    bins = hue[eligible] * HUE_BINS // 256
    counts = np.bincount(bins, minlength=HUE_BINS)
    return float((counts > HUE_BIN_SHARE * total).sum())


def _colour_entropy(rgb_uint8: np.ndarray) -> float:
    shift = 8 - int(math.log2(ENTROPY_LEVELS))
    quantised = (rgb_uint8 >> shift).astype(np.int64)
    index = (quantised[..., 0] * ENTROPY_LEVELS + quantised[..., 1]) * ENTROPY_LEVELS + quantised[..., 2]
    counts = np.bincount(index.ravel(), minlength=ENTROPY_LEVELS**3)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def _sharpness(luma255: np.ndarray) -> float:
    if min(luma255.shape) < 3:
        return 0.0
    centre = luma255[1:-1, 1:-1]
    laplacian = luma255[:-2, 1:-1] + luma255[2:, 1:-1] + luma255[1:-1, :-2] + luma255[1:-1, 2:] - 4 * centre
    return float(np.log1p(laplacian.var()))


def _edge_offset(luma: np.ndarray) -> float:
    """Distance of the Sobel-magnitude centroid from the centre: 0 centred, 1 in a corner."""
    height, width = luma.shape
    if min(height, width) < 3:
        return 0.0
    gx = (luma[:-2, 2:] + 2 * luma[1:-1, 2:] + luma[2:, 2:]) - (luma[:-2, :-2] + 2 * luma[1:-1, :-2] + luma[2:, :-2])
    gy = (luma[2:, :-2] + 2 * luma[2:, 1:-1] + luma[2:, 2:]) - (luma[:-2, :-2] + 2 * luma[:-2, 1:-1] + luma[:-2, 2:])
    magnitude = np.hypot(gx, gy)
    total = float(magnitude.sum())
    if total <= 1e-12:  # flat image: no edges to locate
        return 0.0
    rows = np.arange(1, height - 1, dtype=np.float64)
    cols = np.arange(1, width - 1, dtype=np.float64)
    cy = float((magnitude.sum(axis=1) * rows).sum() / total)
    cx = float((magnitude.sum(axis=0) * cols).sum() / total)
    half_w, half_h = (width - 1) / 2, (height - 1) / 2
    dx = (cx - half_w) / half_w
    dy = (cy - half_h) / half_h
    return float(min(1.0, math.hypot(dx, dy) / math.sqrt(2)))


def image_features(path: str | Path) -> dict[str, float]:
    """Features of one stored image; raises OSError/PIL errors for a missing or unreadable file."""
    path = Path(path)
    file_kb = path.stat().st_size / 1024.0
    with Image.open(path) as image:
        width, height = image.size
        image.draft("RGB", (FEATURE_SIDE, FEATURE_SIDE))  # JPEG: decode at a reduced scale
        small = image.convert("RGB")
    small.thumbnail((FEATURE_SIDE, FEATURE_SIDE), Image.Resampling.BILINEAR)
    rgb_uint8 = np.asarray(small, dtype=np.uint8)
    rgb = rgb_uint8.astype(np.float64) / 255.0
    luma = rgb @ LUMA_WEIGHTS
    features = {
        "img_brightness": float(luma.mean()),
        "img_contrast": float(luma.std()),
        "img_colourfulness": _colourfulness(rgb * 255.0),
        "img_hue_count": _hue_count(small),
        "img_colour_entropy": _colour_entropy(rgb_uint8),
        "img_sharpness": _sharpness(luma * 255.0),
        "img_edge_offset": _edge_offset(luma),
        "img_width": float(width),
        "img_height": float(height),
        "img_aspect_ratio": width / height,
        "img_file_kb": file_kb,
    }
    return {name: features[name] for name in IMAGE_FEATURE_COLUMNS}


def _missing(path: object) -> bool:
    return path is None or (not isinstance(path, (str, Path)) and pd.isna(path))


def image_features_frame(paths: Sequence[str | None]) -> pd.DataFrame:
    """One float64 row per path, NaN for None or an unreadable file (logged and counted)."""
    empty = {name: math.nan for name in IMAGE_FEATURE_COLUMNS}
    cache: dict[str, dict[str, float]] = {}
    rows = []
    unreadable = 0
    for path in paths:
        if _missing(path) or not str(path):
            rows.append(empty)
            continue
        key = str(path)
        if key not in cache:
            try:
                cache[key] = image_features(key)
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
                # PIL.UnidentifiedImageError is an OSError
                logger.warning("image features skipped for %s: %s", key, exc)
                unreadable += 1
                cache[key] = empty
        rows.append(cache[key])
    if unreadable:
        logger.warning("image features: %d unreadable file(s) of %d paths", unreadable, len(rows))
    return pd.DataFrame(rows, columns=IMAGE_FEATURE_COLUMNS, dtype="float64")
