"""udfs.resample against Pillow's own Lanczos resize: the same pixels, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.conftest import SAMPLE_PHOTOS
from udfs import resample


def pillow(a: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(a, "L").resize((width, height), Image.Resampling.LANCZOS))


def images(rng: np.random.Generator, h: int, w: int):
    """Noise, a flat image with bright specks, and a smooth gradient: rounding differs on each."""
    yield rng.integers(0, 256, (h, w), dtype=np.uint8)
    specks = np.full((h, w), rng.integers(0, 256), np.uint8)
    specks[rng.integers(0, h, 50), rng.integers(0, w, 50)] = 255
    yield specks
    y, x = np.mgrid[0:h, 0:w]
    yield ((np.sin(x / 7.0) + np.cos(y / 13.0)) * 60 + 128).astype(np.uint8)


def test_equals_pillow_on_random_shapes_down_and_up():
    rng = np.random.default_rng(11)
    shapes = [(1, 1), (1, 700), (700, 1), (8, 9), (9, 8), (5, 17), (300, 20), (20, 300)]
    shapes += [tuple(int(v) for v in rng.integers(1, 1200, 2)) for _ in range(30)]
    for h, w in shapes:
        for a in images(rng, h, w):
            for width, height in [(9, 8), (32, 32), (w, max(1, h // 3)), (max(1, w // 3), h)]:
                assert np.array_equal(
                    resample.lanczos_resize(a, width, height), pillow(a, width, height)
                ), (h, w, width, height)


def test_tall_images_follow_the_pass_order_of_the_installed_pillow():
    # The passes round in between, so running them in the other order changes a last bit
    # somewhere in these tall images; the installed Pillow's order must be the one used.
    rng = np.random.default_rng(5)
    sides = rng.integers([600, 20], [1500, 250], size=(12, 2))
    tall = [rng.integers(0, 256, (int(h), int(w)), dtype=np.uint8) for h, w in sides]
    installed = resample._VERTICAL_FIRST_WHEN_TALL
    assert any(
        not np.array_equal(resample.lanczos_resize(a, 9, 8, not installed), pillow(a, 9, 8))
        for a in tall
    )
    for a in tall:
        assert np.array_equal(resample.lanczos_resize(a, 9, 8), pillow(a, 9, 8))


@pytest.mark.parametrize("path", SAMPLE_PHOTOS, ids=lambda p: p.name)
def test_equals_pillow_on_photos(path):
    g = Image.open(path).convert("L")
    a = np.asarray(g)
    assert np.array_equal(resample.lanczos_resize(a, 9, 8), pillow(a, 9, 8))
    g.thumbnail((512, 512), Image.Resampling.BICUBIC)
    a = np.asarray(g)
    assert np.array_equal(resample.lanczos_resize(a, 9, 8), pillow(a, 9, 8))
