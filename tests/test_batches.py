"""What each training step sees (`train.batches`): known faces, the pools added to them, the
identities of the contrastive loss, blurred and restyled shares."""

import numpy as np


def test_each_training_batch_adds_a_quarter_of_unknown_faces_with_a_uniform_target():
    from train.batches import TrainingBatches
    from train.defaults import NON_FACES_PER_BATCH, UNKNOWN_PER_BATCH, UNKNOWN_WEIGHT

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 16, 16, 3), dtype=np.uint8)
    labels = np.arange(40) % 4
    unknown = rng.integers(0, 256, (10, 16, 16, 3), dtype=np.uint8)
    weights = np.linspace(0.5, 2.0, 40)
    batches = TrainingBatches(images, labels, 4, weights, 16, unknown, seed=0)
    assert len(batches) == 3  # 16 + 16 + 8 known faces
    x, y, w = batches[0]
    extra = round(UNKNOWN_PER_BATCH * 16)
    assert x.shape == (16 + extra, 16, 16, 3) and x.dtype == np.uint8
    assert y.shape == (16 + extra, 4) and np.allclose(y.sum(axis=1), 1)
    assert np.all(y[:16].max(axis=1) == 1), "known faces are one-hot"
    assert np.allclose(y[16:], 0.25) and np.allclose(w[16:], UNKNOWN_WEIGHT)
    np.testing.assert_array_equal(y[:16].argmax(axis=1), labels[batches.order[:16]])
    np.testing.assert_allclose(w[:16], weights[batches.order[:16]].astype(np.float32))

    x, (y, ids), (w, contrastive_w) = TrainingBatches(images, labels, 4, weights, 16, unknown, seed=0,
                                                      identities=True)[0]
    assert np.all(ids[16:] >= 4), "unknown faces are identities of their own, after the classes"
    assert np.all(ids[16::2] == ids[17::2]), "each unknown face comes twice, so it has a positive"
    np.testing.assert_array_equal(x[16::2], x[17::2])
    assert len(contrastive_w) == len(ids)

    non_faces = np.zeros((5, 16, 16, 3), np.uint8)  # told apart from the random unknown faces by being black
    x, (y, ids), (w, _) = TrainingBatches(images, labels, 4, weights, 16, unknown, seed=0, identities=True,
                                          non_faces=non_faces)[0]
    more = round(NON_FACES_PER_BATCH * 16)
    assert len(x) == len(y) == len(w) == len(ids) == 16 + extra + more
    assert not x[16 + extra:].any() and x[16:16 + extra].any(), "the unknown faces, then the pictures with no face"
    assert np.allclose(y[16:], 0.25) and np.allclose(w[16:], UNKNOWN_WEIGHT)
    assert np.all(ids[16 + extra:] >= 4 + len(unknown)), "identities apart from the unknown faces'"
    assert np.all(ids[16 + extra::2] == ids[17 + extra::2])

    _, _, w = TrainingBatches(images, labels, 4, weights, 16, unknown, seed=0, non_faces=non_faces,
                              negative_weight=1.5)[0]
    assert np.allclose(w[16:], 1.5), "--negative-weight sets the weight of every face with a uniform target"
    np.testing.assert_allclose(w[:16], weights[batches.order[:16]].astype(np.float32))


def test_strangers_are_identities_of_their_own_and_a_share_of_each_batch_is_redrawn():
    from train.batches import TrainingBatches
    from train.defaults import NON_FACES_PER_BATCH, STRANGERS_PER_BATCH, UNKNOWN_PER_BATCH

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 16, 16, 3), dtype=np.uint8)
    labels = np.arange(40) % 4
    unknown, non_faces = rng.integers(0, 256, (10, 16, 16, 3), dtype=np.uint8), np.zeros((5, 16, 16, 3), np.uint8)
    strangers = np.full((7, 16, 16, 3), 255, np.uint8)  # told apart by being white
    x, (y, ids), (w, _) = TrainingBatches(images, labels, 4, np.ones(40), 16, unknown, seed=0, identities=True,
                                          non_faces=non_faces, strangers=strangers)[0]
    first = 16 + round(UNKNOWN_PER_BATCH * 16) + round(NON_FACES_PER_BATCH * 16)
    assert len(x) == len(ids) == first + round(STRANGERS_PER_BATCH * 16)
    assert np.all(x[first:] == 255) and np.allclose(y[first:], 0.25)
    assert np.all(ids[first:] >= 4 + len(unknown) + len(non_faces)), "after the classes, unknown faces and non-faces"
    assert np.all(ids[first::2] == ids[first + 1::2]), "each stranger comes twice, so it has a positive"

    plain = TrainingBatches(images, labels, 4, np.ones(40), 16, unknown, seed=0)[0][0]
    styled = TrainingBatches(images, labels, 4, np.ones(40), 16, unknown, seed=0, style_fraction=1.0)[0][0]
    assert plain.shape == styled.shape and not np.array_equal(plain, styled)



def test_a_share_of_every_batch_is_turned_grey_and_the_rest_keeps_its_colour():
    from train.batches import TrainingBatches

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (400, 8, 8, 3), dtype=np.uint8)
    unknown = rng.integers(0, 256, (50, 8, 8, 3), dtype=np.uint8)
    x = TrainingBatches(images, np.arange(400) % 4, 4, np.ones(400), 400, unknown, seed=0, grey_fraction=0.3,
                        degrade_fraction=0.0)[0][0]
    grey = (x[..., 0] == x[..., 1]).all(axis=(1, 2)) & (x[..., 1] == x[..., 2]).all(axis=(1, 2))
    assert 0.22 < grey.mean() < 0.38, "about the share asked for, known and unknown faces alike"
    assert grey[400:].any(), "unknown faces are turned grey too, so grey is no sign of a known face"
    plain = TrainingBatches(images, np.arange(400) % 4, 4, np.ones(400), 400, unknown, seed=0,
                            degrade_fraction=0.0)[0][0]
    assert not (plain[..., 0] == plain[..., 1]).all(axis=(1, 2)).any(), "none grey by default"


def test_a_share_of_known_faces_is_shrunk_to_a_size_in_the_range_and_back():
    from train.batches import TrainingBatches
    from train.dataset import degrade

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(64) % 4
    none = TrainingBatches(images, labels, 4, np.ones(64), 64, images[:0], seed=0, degrade_fraction=0.0)
    np.testing.assert_array_equal(none[0][0], images[none.order])
    every = TrainingBatches(images, labels, 4, np.ones(64), 64, images[:0], seed=0, degrade_fraction=1.0,
                            degrade_sizes=(8, 16))
    x = every[0][0]
    originals = images[every.order]
    assert not any(np.array_equal(a, b) for a, b in zip(x, originals)), "every face blurred"
    # Each is exactly some size's round trip, and only sizes in the range occur.
    sizes = [next(s for s in range(4, 33) if np.array_equal(degrade(o[None], s)[0], b)) for o, b in zip(originals, x)]
    assert min(sizes) >= 8 and max(sizes) <= 16 and len(set(sizes)) > 3


def test_strangers_are_drawn_by_their_odds():
    from train.batches import TrainingBatches

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 8, 8, 3), dtype=np.uint8)
    strangers = np.stack([np.full((8, 8, 3), v, np.uint8) for v in range(10)])  # each told by its grey level
    odds = np.r_[np.full(9, 0.01), 0.91]
    batches = TrainingBatches(images, np.arange(64) % 4, 4, np.ones(64), 64, images[:0], seed=0,
                              strangers=strangers, stranger_odds=odds)
    drawn = np.concatenate([batches[0][0][64:, 0, 0, 0] for _ in range(20)])
    assert 0.8 < np.mean(drawn == 9) < 0.98, "the stranger with odds 0.91 is most of the draws"


def test_hard_strangers_are_the_ones_the_model_puts_nearest_a_character():
    from train.architectures import make_model
    from train.fit import stranger_odds

    import keras

    model = make_model("default", 32, 3, seed=0)
    images = np.random.default_rng(1).integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    odds = stranger_odds(model, images, 0.5)
    assert odds.shape == (12,) and np.isclose(odds.sum(), 1) and np.all(odds >= 0.5 / 12)
    nearest = keras.Model(model.input, model.get_layer("prototypes").output).predict(images, verbose=0).max(axis=1)
    np.testing.assert_array_equal(np.argsort(odds, kind="stable"), np.argsort(nearest, kind="stable"),
                                  "the closer to a character, the likelier the draw")
    even = stranger_odds(model, images, 0.0)
    np.testing.assert_allclose(even, 1 / 12)


def test_fit_refuses_shares_sizes_and_weights_it_cannot_use_in_one_line(capsys):
    import pytest

    from train.cli import main

    for given, said in ((["--degrade", "1.5"], "--degrade, --styles, --grey, --page-framing and --hard-strangers are shares"),
                        (["--styles", "-0.1"], "--degrade, --styles, --grey, --page-framing and --hard-strangers are shares"),
                        (["--hard-strangers", "2"], "--degrade, --styles, --grey, --page-framing and --hard-strangers are shares"),
                        (["--grey", "1.5"], "--degrade, --styles, --grey, --page-framing and --hard-strangers are shares"),
                        (["--page-framing", "2"], "--degrade, --styles, --grey, --page-framing and --hard-strangers are shares"),
                        (["--hard-strangers", "0.5"], "--hard-strangers needs --init"),
                        (["--degrade-sizes", "72", "40"], "--degrade-sizes needs 1 <= SMALLEST <= LARGEST"),
                        (["--degrade-sizes", "0", "10"], "--degrade-sizes needs 1 <= SMALLEST <= LARGEST"),
                        (["--hard-strangers", "0.5", "--init", "m", "--strangers", "s", "--arch", "seed"],
                         "--hard-strangers needs a cosine head"),
                        (["--negative-weight", "-1"], "--negative-weight is a loss weight"),
                        (["--negative-weight", "nan"], "--negative-weight is a loss weight")):
        with pytest.raises(SystemExit) as stopped:
            main(["fit", "--data", "faces", "--out", "out", *given])
        assert stopped.value.code == 2 and said in capsys.readouterr().err
