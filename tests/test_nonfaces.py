"""Pictures with no face, which the network trains and is judged on as nobody it knows."""

import numpy as np

from train.nonfaces import FACE_CLEARANCE, MIN_SIDE, SYNTHETIC_KINDS, background_boxes, synthetic_non_faces


def test_synthetic_pictures_are_flat_colours_gradients_noise_and_blobs_in_equal_shares():
    images = synthetic_non_faces(40, 24, np.random.default_rng(0))
    assert images.shape == (40, 24, 24, 3) and images.dtype == np.uint8
    spread = images.reshape(40, -1, 3).std(axis=1).mean(axis=1)
    flat, gradient, noise, blobs = (spread[i::len(SYNTHETIC_KINDS)] for i in range(len(SYNTHETIC_KINDS)))
    assert np.all(flat == 0)
    assert np.all(noise > 60), "uniform noise has a standard deviation near 74"
    assert np.all(gradient < noise.min()) and np.all(blobs < noise.min())
    np.testing.assert_array_equal(images, synthetic_non_faces(40, 24, np.random.default_rng(0)))


def test_background_squares_keep_away_from_every_marked_face():
    faces = [(100, 50, 60, 60), (300, 200, 80, 80)]
    boxes = background_boxes(480, 320, faces, 50, np.random.default_rng(0))
    assert len(boxes) == 50
    for x, y, w, h in boxes:
        assert w == h and MIN_SIDE <= w <= 160 and x >= 0 and y >= 0 and x + w <= 480 and y + h <= 320
        for fx, fy, fw, fh in faces:
            margin_x, margin_y = FACE_CLEARANCE * fw, FACE_CLEARANCE * fh
            apart = (x + w <= fx - margin_x or x >= fx + fw + margin_x
                     or y + h <= fy - margin_y or y >= fy + fh + margin_y)
            assert apart, f"{(x, y, w, h)} is too close to the face at {(fx, fy, fw, fh)}"


def test_a_picture_too_small_or_all_face_gives_no_square():
    rng = np.random.default_rng(0)
    assert background_boxes(40, 300, [], 5, rng) == []
    assert background_boxes(100, 100, [(0, 0, 100, 100)], 5, rng) == []


def test_training_uses_only_the_illustrations_that_calibrate_does_not_judge_on(data):
    from train.nonfaces import BACKGROUNDS_PER_SCENE, SYNTHETIC_FOR_TRAINING, training_non_faces
    from train.scenes import scene_halves

    images, names = training_non_faces(data / "scenes", 32, seed=0)
    halves = scene_halves(data / "scenes")
    assert names == [path.name for path in halves["calibration"]]
    assert not set(names) & {path.name for path in halves["test"]}
    assert len(names) == 133
    assert SYNTHETIC_FOR_TRAINING + 0.9 * BACKGROUNDS_PER_SCENE * 133 <= len(images) \
        <= SYNTHETIC_FOR_TRAINING + BACKGROUNDS_PER_SCENE * 133
    assert images.shape[1:] == (32, 32, 3)
