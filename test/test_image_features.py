"""Image / depth normalisation and lip augmentation (features/image.py)."""
from __future__ import annotations

import math

from centralnet_ros.features.image import (augment_lip_sequence, clip_depth, depth_mm_to_metres,
                                           random_crop_box, znormalize_frames)
import numpy as np
import pytest


def _lips(t: int = 6, seed: int = 0) -> np.ndarray:
    """Make a textured (T, 60, 80) uint8 sequence well inside 0..255 (no saturation)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:60, 0:80]
    base = 120 + 30 * np.sin(xx / 9.0) * np.cos(yy / 7.0)
    return np.stack([base + 5 * rng.standard_normal((60, 80)) + i for i in range(t)]).clip(0, 255).astype(np.uint8)


def test_znormalize_each_frame():
    x = _lips()
    z = znormalize_frames(x)
    assert z.shape == x.shape and z.dtype == np.float32
    np.testing.assert_allclose(z.mean(axis=(1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(1, 2)), 1, atol=1e-4)
    # independent per frame: an affine map of one frame changes nothing
    y = x.astype(np.float64)
    y[2] = 0.3 * y[2] + 40
    np.testing.assert_allclose(znormalize_frames(y), z, atol=1e-4)
    # a flat frame becomes zeros, not NaN
    flat = np.full((2, 60, 80), 77, np.uint8)
    np.testing.assert_array_equal(znormalize_frames(flat), 0)
    with pytest.raises(ValueError, match='H, W'):
        znormalize_frames(np.ones(5))


def test_depth_millimetres_to_metres():
    d = np.array([[0, 500, 1500], [4000, 9000, 65535]], dtype=np.uint16)
    m = depth_mm_to_metres(d, min_m=0.4, max_m=4.5)
    assert m.dtype == np.float32
    np.testing.assert_allclose(m, [[0, 0.5, 1.5], [4.0, 0, 0]], atol=1e-6)
    np.testing.assert_allclose(depth_mm_to_metres(d)[1], [4.0, 9.0, 65.535], rtol=1e-6)
    nan = depth_mm_to_metres(d, min_m=0.4, max_m=4.5, invalid_value=np.nan)
    assert np.isnan(nan[0, 0]) and nan[0, 1] == pytest.approx(0.5)
    with pytest.raises(ValueError, match='millimetres'):
        depth_mm_to_metres(d.astype(np.float32))
    np.testing.assert_allclose(clip_depth(np.array([0.2, 1.0, np.inf]), min_m=0.5, max_m=2.0), [0, 1.0, 0])


def test_crop_box_keeps_at_least_80_percent_of_the_area():
    rng = np.random.default_rng(0)
    for _ in range(500):
        top, left, h, w = random_crop_box(60, 80, rng=rng, min_area=0.8)
        assert h * w >= 0.8 * 60 * 80
        assert 0 <= top <= 60 - h and 0 <= left <= 80 - w
        assert abs(h / w - 60 / 80) < 0.03                                   # aspect kept


def test_augmentation_is_reproducible_and_driven_by_the_generator():
    x = _lips()
    a = augment_lip_sequence(x, rng=np.random.default_rng(5))
    b = augment_lip_sequence(x, rng=np.random.default_rng(5))
    c = augment_lip_sequence(x, rng=np.random.default_rng(6))
    assert a.shape == x.shape and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1.0
    assert a.min() >= 0 and a.max() <= 255


def test_augmentation_is_the_same_for_every_frame():
    frame = _lips(1)[0]
    seq = np.stack([frame] * 5)
    out = augment_lip_sequence(seq, rng=np.random.default_rng(3))
    for f in out[1:]:
        np.testing.assert_array_equal(f, out[0])


def test_crop_resizes_back_and_keeps_80_percent_of_each_side_range():
    # pixel value = column index: after crop + resize the visible column range tells the crop width
    cols = np.tile(np.arange(80, dtype=np.float32), (60, 1))[None].repeat(2, axis=0)
    rows = np.tile(np.arange(60, dtype=np.float32)[:, None], (1, 80))[None].repeat(2, axis=0)
    widths, heights = [], []
    for seed in range(40):
        kw = {'brightness': 0, 'contrast': 0, 'gradient': 0, 'gamma': 0, 'min_crop_area': 0.8,
              'value_range': (0.0, 255.0)}
        oc = augment_lip_sequence(cols, rng=np.random.default_rng(seed), **kw)
        orow = augment_lip_sequence(rows, rng=np.random.default_rng(seed), **kw)
        assert oc.shape == (2, 60, 80)
        widths.append(oc.max() - oc.min() + 1)
        heights.append(orow.max() - orow.min() + 1)
    widths, heights = np.array(widths), np.array(heights)
    side = math.sqrt(0.8)
    assert np.all(widths >= side * 80 - 1.5) and np.all(heights >= side * 60 - 1.5)
    assert np.all(widths * heights >= 0.8 * 80 * 60 - 200)
    assert widths.min() < 78                                               # it does crop


def test_brightness_and_contrast_cancel_under_z_normalisation_but_gradient_does_not():
    x = _lips()
    ref = znormalize_frames(x)
    affine = augment_lip_sequence(x, rng=np.random.default_rng(1), brightness=0.05, contrast=0.2,
                                  gradient=0, gamma=0, min_crop_area=1.0)
    assert np.abs(affine - x).max() > 1.0                                  # it changed the pixels...
    np.testing.assert_allclose(znormalize_frames(affine), ref, atol=1e-3)  # ...but not what the net sees
    lit = augment_lip_sequence(x, rng=np.random.default_rng(1), brightness=0, contrast=0,
                               gradient=0.3, gamma=0.3, min_crop_area=1.0)
    assert np.abs(znormalize_frames(lit) - ref).max() > 0.1


def test_bad_arguments():
    with pytest.raises(ValueError, match='T, H, W'):
        augment_lip_sequence(np.zeros((60, 80)), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match='contrast'):
        augment_lip_sequence(_lips(), rng=np.random.default_rng(0), contrast=1.5)
    with pytest.raises(ValueError, match='min_area'):
        random_crop_box(60, 80, rng=np.random.default_rng(0), min_area=0.0)


def test_lip_video_window_matches_the_training_preprocessing():
    import cv2

    from centralnet_ros.features.image import lip_frames_to_model_input
    from centralnet_ros.features.pipelines import Window
    from centralnet_ros.features.speech import lip_input as lip_video_input
    grey = _lips(20)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    win = Window(data=rgb, stamps_ns=np.arange(20) * 40_000_000)
    got = lip_video_input(win)
    assert got.shape == (1, 12, 60, 80)
    np.testing.assert_allclose(got[0], lip_frames_to_model_input(grey, num_frames=12), atol=1e-5)
    # larger camera crops are resized to 60 x 80 first
    big = np.stack([cv2.resize(f, (160, 120), interpolation=cv2.INTER_LINEAR) for f in rgb])
    assert lip_video_input(Window(data=big, stamps_ns=np.arange(20))).shape == (1, 12, 60, 80)
    with pytest.raises(ValueError, match='RGB or'):
        lip_video_input(Window(data=np.zeros((3, 4)), stamps_ns=np.arange(3)))
