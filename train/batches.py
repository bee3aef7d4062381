"""The training batches `train fit` feeds the network, built with NumPy only so they feed any
backend."""

import keras
import numpy as np

from train.dataset import degrade, greyscale
from train.defaults import (DEGRADE_FRACTION, DEGRADE_SIZES, NON_FACES_PER_BATCH, STRANGERS_PER_BATCH,
                            UNKNOWN_PER_BATCH, UNKNOWN_WEIGHT)
from train.styles import restyle


class TrainingBatches(keras.utils.PyDataset):
    """Shuffled batches of known faces (one-hot target, class weight), a share of them made
    blurry (see `train.dataset.degrade`), each joined by unknown faces, by pictures with no
    face and by `strangers` (one face per character), all with a uniform target. With
    `identities`, the targets of the contrastive loss come too: each known face's class, and
    each stranger its own identity (after the classes), drawn twice so that it has a partner.
    With `style_fraction`, that share of every batch is redrawn in another style
    (`train.styles`), each copy of a stranger on its own, so two styles of one face are a
    positive pair. With `grey_fraction`, that share of every batch is then turned grey as well
    (on top of the grey among the styles): pages of manga and scans are grey, and a network that
    sees colour alone tells two characters of one hair colour apart by little else. With
    `framed` (copies of `images`, `unknown` and `strangers` cut the page's way, see
    `train.framing`), each face is drawn in that framing with chance `framing_fraction`, so the
    framing of a source is no sign of who it is. Every face
    with a uniform target weighs `negative_weight` in the loss; with `stranger_odds` (one
    number per stranger), strangers are drawn in proportion to them. NumPy only, so it feeds
    any backend."""

    def __init__(self, images, labels, num_classes, weights, batch_size, unknown, seed, identities=False,
                 non_faces=None, strangers=None, style_fraction=0.0, degrade_fraction=DEGRADE_FRACTION,
                 degrade_sizes=DEGRADE_SIZES, negative_weight=UNKNOWN_WEIGHT, stranger_odds=None,
                 grey_fraction=0.0, framed=None, framing_fraction=0.0):
        super().__init__()
        self.negative_weight = negative_weight
        self.stranger_odds = None if stranger_odds is None else np.asarray(stranger_odds, float) / np.sum(stranger_odds)
        self.identities = identities
        self.images, self.labels, self.num_classes = images, labels, num_classes
        self.weights, self.batch_size, self.unknown = weights.astype(np.float32), batch_size, unknown
        self.non_faces = non_faces if non_faces is not None else unknown[:0]
        self.strangers = strangers if strangers is not None else unknown[:0]
        self.style_fraction, self.grey_fraction = style_fraction, grey_fraction
        self.degrade_fraction, self.degrade_sizes = degrade_fraction, degrade_sizes
        self.framing_fraction = framing_fraction if framed is not None else 0.0
        self.framed = {name: pool for name, pool in zip(("known", "unknown", "strangers"), framed or ())
                       if pool is not None}
        self.rng = np.random.default_rng(seed)
        self.on_epoch_end()

    def __len__(self):
        return int(np.ceil(len(self.labels) / self.batch_size))

    def on_epoch_end(self):
        self.order = self.rng.permutation(len(self.labels))

    def __getitem__(self, index):
        idx = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        x = self.in_framing("known", self.images, idx)
        low, high = self.degrade_sizes
        for i in np.nonzero(self.rng.random(len(idx)) < self.degrade_fraction)[0]:
            x[i] = degrade(x[i:i + 1], int(self.rng.integers(low, high + 1)))[0]
        y = keras.utils.to_categorical(self.labels[idx], self.num_classes).astype(np.float32)
        w = self.weights[idx]
        ids = self.labels[idx].astype(np.float32)
        pools = (("unknown", self.unknown, UNKNOWN_PER_BATCH), ("non_faces", self.non_faces, NON_FACES_PER_BATCH),
                 ("strangers", self.strangers, STRANGERS_PER_BATCH))
        # Each pool's identities follow the classes and the pools before it.
        firsts = self.num_classes + np.cumsum([0] + [len(pool) for _, pool, _ in pools[:-1]])
        for (name, pool, share), first in zip(pools, firsts):
            extra = int(round(share * len(idx))) if len(pool) else 0
            if not extra:
                continue
            if pool is self.strangers and self.stranger_odds is not None:
                chosen = self.rng.choice(len(pool), extra, p=self.stranger_odds)
            else:
                chosen = self.rng.integers(0, len(pool), extra)
            if self.identities:  # each one twice: the model augments the copies differently
                chosen = np.repeat(chosen[: (extra + 1) // 2], 2)[:extra]
            x = np.concatenate([x, self.in_framing(name, pool, chosen)])
            y = np.concatenate([y, np.full((extra, self.num_classes), 1 / self.num_classes, np.float32)])
            w = np.concatenate([w, np.full(extra, self.negative_weight, np.float32)])
            ids = np.concatenate([ids, (first + chosen).astype(np.float32)])
        if self.style_fraction:
            x = restyle(x, self.rng, self.style_fraction)
        if self.grey_fraction:  # no draw without it, so runs without grey stay as they were
            grey = self.rng.random(len(x)) < self.grey_fraction
            x[grey] = greyscale(x[grey])
        if self.identities:
            return x, (y, ids), (w, np.ones(len(ids), np.float32))
        return x, y, w

    def in_framing(self, pool_name, pool, idx):
        """A copy of `pool[idx]`, each face swapped for its page-framed copy with chance
        `framing_fraction` (no draw without one, so runs without it stay as they were)."""
        x = pool[idx].copy()
        if self.framing_fraction and pool_name in self.framed:
            swap = self.rng.random(len(idx)) < self.framing_fraction
            x[swap] = self.framed[pool_name][np.asarray(idx)[swap]]
        return x
