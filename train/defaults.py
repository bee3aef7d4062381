"""Every default of training and calibration in one place, as `animerec.defaults` holds the
serving ones. The command line's options start from these; the card records what a run used."""

# `fit`: the loop.
EPOCHS = 40
IMAGE_SIZE = 80  # pixels of the square the network sees
BATCH_SIZE = 64  # known faces per batch; the pools below are added on top
LEARNING_RATE = 2e-3  # peak of the cosine decay, after warm-up
PATIENCE = 10  # epochs without a better validation macro accuracy before stopping

# `fit`: what joins each batch of known faces, as a fraction of them, with a uniform target.
UNKNOWN_PER_BATCH = 0.25  # faces of characters in no class (`unknown/`)
NON_FACES_PER_BATCH = 0.125  # pictures with no face (`train.nonfaces`)
STRANGERS_PER_BATCH = 0.25  # one-picture strangers (`strangers/`)
UNKNOWN_WEIGHT = 0.5  # the loss weight of each of them

# `fit`: a share of known training faces is shrunk to a size drawn from this range (inclusive)
# and enlarged back, the way a small face reaches the model.
DEGRADE_FRACTION = 0.3
DEGRADE_SIZES = (64, 64)

# `calibrate`: every face is judged shrunk to this size and back (unknown crops are mostly
# 64 px, known ones 128 px, so the rule cannot just detect blur), and the default threshold
# rejects this share of each kind of stranger.
DEGRADED_SIZE = 64
THRESHOLD_TARGET = 0.92
# Official portraits (`strangers/`) are what a visitor most often uploads of a character the
# model does not know, and the share of them called Unknown is a bar the page is held to: their
# calibration fifth (hundreds of faces, one per character, so a steadier estimate than a few
# dozen faces of a few characters) is held to that share.
PORTRAIT_TARGET = 0.97

# `calibrate`: the model's raw number may lose a share of the face's closeness to the cohort of
# strangers (`Scorer.model_raw`); the share is chosen from these, losing no kind of stranger
# more than this much of its calibration faces' rejection against the plain cosine.
MODEL_COHORT_WEIGHTS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0)
MODEL_COHORT_MOST_LOST = 0.01
# Weights whose validation faces kept are within this of the most count as tied (3 of 1,536
# faces), and the smallest of them is chosen.
MODEL_COHORT_TIE = 0.002
