"""The training losses (`train.losses`): the cosine margin and the contrastive loss."""

import numpy as np
import pytest


def test_the_margin_loss_lowers_the_true_class_and_leaves_a_uniform_target_alone():
    import keras

    from train.losses import margin_loss

    probabilities = np.array([[0.7, 0.2, 0.1]], np.float32)
    plain, margin = margin_loss(0.0, smoothing=0.0), margin_loss(0.2, smoothing=0.0)
    one_hot, uniform = np.array([[1.0, 0, 0]], np.float32), np.full((1, 3), 1 / 3, np.float32)
    assert float(keras.ops.convert_to_numpy(plain(one_hot, probabilities))[0]) == pytest.approx(-np.log(0.7), rel=1e-5)
    assert float(keras.ops.convert_to_numpy(margin(one_hot, probabilities))[0]) > -np.log(0.7) + 1
    assert float(keras.ops.convert_to_numpy(margin(uniform, probabilities))[0]) == pytest.approx(
        float(keras.ops.convert_to_numpy(plain(uniform, probabilities))[0]), rel=1e-5)


def test_the_contrastive_loss_is_small_when_identities_cluster_and_large_when_they_do_not():
    import keras

    from train.losses import contrastive_loss

    features = np.array([[1, 0], [1, 0.1], [0, 1], [0.1, 1]], np.float32)
    loss = contrastive_loss(temperature=0.1)
    together = keras.ops.convert_to_numpy(loss(np.array([0, 0, 1, 1], np.float32), features))
    apart = keras.ops.convert_to_numpy(loss(np.array([0, 1, 0, 1], np.float32), features))
    assert together.shape == (4,) and np.all(together < 0.01) and np.all(apart > 5)
    alone = keras.ops.convert_to_numpy(loss(np.array([0, 1, 2, 3], np.float32), features))
    assert np.all(alone == 0), "a face with no other face of its identity in the batch adds nothing"
