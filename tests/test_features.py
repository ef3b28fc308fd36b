"""udfs.features on tiny arrays with values computed by hand, and against ImageHash."""

from __future__ import annotations

import math

import imagehash
import numpy as np
import pytest
from PIL import Image

from tests.conftest import SAMPLE_PHOTOS
from udfs import features


def gray(rows) -> Image.Image:
    return Image.fromarray(np.array(rows, dtype=np.uint8), "L")


def test_histogram_counts_each_level():
    h = features.histogram(gray([[0, 0, 255], [7, 7, 7]]))
    assert h.dtype == np.int64 and h.shape == (256,)
    assert (h[0], h[7], h[255], h.sum()) == (2, 3, 1, 6)


def test_histogram_rejects_other_modes():
    with pytest.raises(ValueError):
        features.histogram(Image.new("RGB", (2, 2)))


def test_mean_and_population_std_by_hand():
    # pixels 0, 2, 4, 6: mean 3, population variance (9 + 1 + 1 + 9) / 4 = 5
    mean, std = features.mean_std(features.histogram(gray([[0, 2], [4, 6]])))
    assert mean == 3.0
    assert std == pytest.approx(math.sqrt(5.0), abs=1e-12)


@pytest.mark.parametrize(
    ("rows", "bits"),
    [
        ([[9, 9], [9, 9]], 0.0),  # one level: no uncertainty
        ([[0, 255], [0, 255]], 1.0),  # two equally likely levels
        ([[0, 1], [2, 3]], 2.0),  # four equally likely levels
        ([[0, 0], [0, 1]], -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))),
    ],
)
def test_entropy_by_hand(rows, bits):
    assert features.entropy(features.histogram(gray(rows))) == pytest.approx(bits, abs=1e-12)


def test_laplacian_variance_by_hand():
    # Valid pixels (1,1) and (1,2): L = 0+0+0+0-4*1 = -4 and L = 0+0+1+0-0 = 1;
    # mean -1.5, population variance ((-2.5)^2 + 2.5^2) / 2 = 6.25.
    a = np.array([[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]], dtype=np.uint8)
    assert features.laplacian_variance(a) == 6.25


def test_laplacian_variance_of_flat_and_tiny_images_is_zero():
    assert features.laplacian_variance(np.full((5, 5), 200, np.uint8)) == 0.0
    assert features.laplacian_variance(np.zeros((2, 100), np.uint8)) == 0.0
    assert features.laplacian_variance(np.zeros((100, 2), np.uint8)) == 0.0


@pytest.mark.parametrize("shape", [(3, 3), (64, 65), (130, 7), (301, 257)])
def test_laplacian_variance_matches_float_definition(shape):
    a = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    f = a.astype(np.float64)
    lap = f[:-2, 1:-1] + f[2:, 1:-1] + f[1:-1, :-2] + f[1:-1, 2:] - 4 * f[1:-1, 1:-1]
    assert features.laplacian_variance(a) == pytest.approx(lap.var(), rel=1e-12)


def test_laplacian_variance_of_extreme_checkerboard():
    # 0/255 checkerboard: every inner L is +-1020, mean ~0: variance close to 1020^2.
    a = (np.indices((50, 50)).sum(axis=0) % 2 * 255).astype(np.uint8)
    assert features.laplacian_variance(a) == pytest.approx(1020.0**2, rel=1e-3)


@pytest.mark.parametrize("path", SAMPLE_PHOTOS, ids=lambda p: p.name)
def test_dhash_equals_imagehash_on_photos(path):
    g = Image.open(path).convert("L")
    assert features.dhash(np.asarray(g)) == str(imagehash.dhash(g))


def test_dhash_equals_imagehash_on_random_and_tiny_images():
    rng = np.random.default_rng(3)
    for shape in [(1, 1), (8, 9), (17, 5), (480, 640), (1500, 200)]:
        a = rng.integers(0, 256, shape, dtype=np.uint8)
        assert features.dhash(a) == str(imagehash.dhash(Image.fromarray(a, "L")))


def _distance(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def test_dhash_is_stable_under_small_rotation_not_under_quarter_turn():
    g = Image.open(SAMPLE_PHOTOS[0]).convert("L")
    base = features.dhash(np.asarray(g))
    tilted = g.rotate(1, resample=Image.Resampling.BICUBIC)
    assert _distance(base, features.dhash(np.asarray(tilted))) <= 8
    turned = g.transpose(Image.Transpose.ROTATE_90)
    assert _distance(base, features.dhash(np.asarray(turned))) >= 16


def test_gray_features_keys_and_types():
    out = features.gray_features(gray([[0, 10, 20], [30, 40, 50], [60, 70, 80]]))
    assert set(out) == {"gray_mean", "gray_std", "gray_hist", "entropy", "sharpness", "dhash"}
    assert out["gray_mean"] == 40.0 and len(out["dhash"]) == 16


@pytest.mark.parametrize("shape", [(3, 3), (3, 4100), (67, 3), (129, 4100), (200, 301)])
def test_laplacian_variance_is_exact(shape):
    # Against the definition in Python integers: sums telescoped at the borders and squares
    # summed per column in int32 must lose nothing, on noise and on the worst-case pattern.
    rng = np.random.default_rng(shape[1])
    for a in (
        rng.integers(0, 256, shape, dtype=np.uint8),
        (np.indices(shape).sum(axis=0) % 2 * 255).astype(np.uint8),
    ):
        i = a.astype(np.int64)
        lap = i[:-2, 1:-1] + i[2:, 1:-1] + i[1:-1, :-2] + i[1:-1, 2:] - 4 * i[1:-1, 1:-1]
        n, s, ss = lap.size, int(lap.sum()), int((lap * lap).sum())
        assert features.laplacian_variance(a) == max(0.0, (ss - s * s / n) / n)
