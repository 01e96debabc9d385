"""
The mouth stage before lip_video: real photographs shipped with scikit-image, and the speech bundle's manifest.

``skimage.data.astronaut()`` (Eileen Collins, NASA; public domain) is a portrait: the mouth
was checked by hand on the image at x 213-250, y 135-155 (pixels).  ``coffee``, ``rocket``
and ``hubble_deep_field`` hold no face.
"""
from __future__ import annotations

from centralnet_ros import paths
from centralnet_ros.bundle import load_bundle
from centralnet_ros.features import mouth as MO
from centralnet_ros.features.face import FaceDetectorUnavailable
from centralnet_ros.features.pipelines import run_pipeline, Window
import numpy as np
import pytest

skdata = pytest.importorskip('skimage.data', reason='scikit-image ships the test photographs (extra: test)')

MOUTH = (213, 135, 250, 155)            # hand-checked mouth box of astronaut(): x0, y0, x1, y1


def _shift(img: np.ndarray, dx: int, dy: int) -> np.ndarray:
    return np.roll(np.roll(img, dy, axis=0), dx, axis=1)


def _box_of_crop(img: np.ndarray, stage: dict) -> np.ndarray:
    faces = MO.detect_face_boxes(img[None], max_detect_width=stage.get('max_detect_width', 320))
    return MO.mouth_box(faces[0], mouth_y=0.8, mouth_width=0.6)


def test_the_crop_lands_on_the_mouth():
    img = skdata.astronaut()
    cx, cy, w, h = _box_of_crop(img, {})
    x0, y0, x1, y1 = MOUTH
    assert x0 <= cx <= x1 and y0 <= cy <= y1                                   # centred on the mouth
    assert cx - w / 2 <= x0 + 5 and cx + w / 2 >= x1 - 5                       # and holding all of it
    assert cy - h / 2 <= y0 and cy + h / 2 >= y1
    crops = MO.mouth_frames(np.repeat(img[None], 6, axis=0), {'source': 'full_frame'})
    assert crops.shape == (6, 60, 80) and crops.dtype == np.uint8
    # the lips and teeth: the crop's centre is brighter and more contrasted than its corners
    assert crops[0, 20:40, 25:55].std() > crops[0, :10, :10].std()


def test_the_crop_is_stable_under_small_shifts():
    img = skdata.astronaut()
    base = _box_of_crop(img, {})
    for dx, dy in ((4, 0), (0, -5), (-6, 3), (8, 8)):
        moved = _box_of_crop(_shift(img, dx, dy), {})
        assert np.allclose(moved[:2] - base[:2], (dx, dy), atol=4)             # follows the face
        assert abs(moved[2] - base[2]) <= 0.1 * base[2]
    frames = np.stack([_shift(img, dx, 0) for dx in (0, 1, 2, 3, 2, 1, 0, -1)])
    crops = MO.mouth_frames(frames, {'source': 'full_frame', 'detect_every': 1}).astype(np.float64)
    a = crops[0] - crops[0].mean()
    for c in crops[1:]:                                                        # tracked and smoothed: alike
        b = c - c.mean()
        assert (a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()) > 0.8


@pytest.mark.parametrize('name', ['coffee', 'rocket', 'hubble_deep_field'])
def test_no_face_means_no_lips(name):
    img = getattr(skdata, name)()
    frames = np.repeat(img[None], 4, axis=0)
    assert MO.mouth_frames(frames, {'source': 'full_frame'}) is None
    params = {'num_frames': 12, 'height': 18, 'width': 24, 'mouth': {'source': 'full_frame'}}
    assert run_pipeline('lip_video', Window(frames, np.arange(4) * 40_000_000), params) is None


def test_sources_and_the_speech_manifest():
    bundle = load_bundle(paths.models_dir() / 'speech')
    pp = bundle.manifest.modalities['lip_video'].preprocessing
    assert pp['mouth'] == {f: getattr(MO.MouthStage(**pp['mouth']), f) for f in pp['mouth']}   # every field valid
    img = skdata.astronaut()
    frames = np.repeat(img[None], 10, axis=0)
    x = run_pipeline('lip_video', Window(frames, np.arange(10) * 40_000_000), pp)
    assert x.shape == tuple(bundle.manifest.modalities['lip_video'].input_shape)
    np.testing.assert_allclose(x[0].mean(axis=(1, 2)), 0, atol=1e-4)          # AVLetters' per-frame z-score
    crops = MO.mouth_frames(frames, pp['mouth'])
    assert np.array_equal(MO.mouth_frames(crops, pp['mouth']), crops)          # 60x80 crops pass through (auto)
    aligned = np.repeat(img[70:170, 170:270][None], 3, axis=0)                 # a face-only square image
    assert MO.mouth_frames(aligned, {'source': 'aligned_face'}).shape == (3, 60, 80)
    with pytest.raises(ValueError, match='mouth.source'):
        MO.MouthStage(source='nose')


def test_mediapipe_missing_is_one_clear_error(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_mediapipe(name, *args, **kwargs):
        if name == 'mediapipe':
            raise ImportError('No module named mediapipe')
        return real_import(name, *args, **kwargs)

    MO._mediapipe_detector.cache_clear()
    monkeypatch.setattr(builtins, '__import__', no_mediapipe)
    with pytest.raises(FaceDetectorUnavailable, match=r'centralnet_ros\[mediapipe\]'):
        MO.mouth_frames(np.zeros((2, 48, 64, 3), np.uint8), {'source': 'full_frame', 'detector': 'mediapipe'})
    MO._mediapipe_detector.cache_clear()
