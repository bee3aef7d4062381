"""Fitting score curves to held-out faces, and the ROC figures that judge them (used by `train
calibrate`)."""

import numpy as np

from animerec.calibration import Logistic, Monotone


def fit_monotone(raw, right, min_block=20):
    """Fit P(right | raw) as a non-decreasing curve (isotonic regression by pool-adjacent-
    violators, on blocks of at least `min_block` faces so that single faces do not make steps),
    through each block's mean raw value and share right. Returns a Monotone."""
    order = np.argsort(np.asarray(raw, np.float64), kind="stable")
    x, y = np.asarray(raw, np.float64)[order], np.asarray(right, np.float64)[order]
    blocks = [[x[i:i + min_block].sum(), y[i:i + min_block].sum(), len(x[i:i + min_block])]
              for i in range(0, len(x), min_block)]
    merged = []
    for block in blocks:
        merged.append(block)
        # Pool while a block's share right is not above the one before it.
        while len(merged) > 1 and merged[-1][1] / merged[-1][2] <= merged[-2][1] / merged[-2][2]:
            sx, sy, n = merged.pop()
            merged[-1] = [merged[-1][0] + sx, merged[-1][1] + sy, merged[-1][2] + n]
    knots_raw = [sx / n for sx, _, n in merged]
    knots_score = [sy / n for _, sy, n in merged]
    if len(knots_raw) == 1:  # nothing to order: a flat curve
        knots_raw, knots_score = [knots_raw[0] - 1.0, knots_raw[0] + 1.0], knots_score * 2
    return Monotone(tuple(knots_raw), tuple(knots_score))


def fit_logistic(raw, right, iterations=50, ridge=1e-6):
    """Fit P(right | raw) by Newton's method on the log-likelihood; returns a Logistic.

    raw: (N,) floats. right: (N,) booleans (the name given at that raw score was right).
    """
    x = np.stack([np.asarray(raw, np.float64), np.ones(len(raw))], axis=1)
    y = np.asarray(right, np.float64)
    w = np.zeros(2)
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-x @ w))
        hessian = x.T @ (x * (p * (1 - p))[:, None]) + ridge * np.eye(2)
        step = np.linalg.solve(hessian, x.T @ (y - p))
        w += step
        if np.abs(step).max() < 1e-9:
            break
    return Logistic(float(w[0]), float(w[1]))


def roc_curve(positive, negative):
    """(false positive rates, true positive rates, thresholds) for scores of positives and
    negatives, a positive being accepted when its score is >= the threshold."""
    thresholds = np.unique(np.concatenate([positive, negative]))[::-1]
    tpr = np.array([(positive >= t).mean() for t in thresholds])
    fpr = np.array([(negative >= t).mean() for t in thresholds])
    return np.r_[0.0, fpr, 1.0], np.r_[0.0, tpr, 1.0], thresholds


def auroc(positive, negative):
    """Area under the ROC curve: the chance that a random positive scores above a random
    negative (ties count half)."""
    positive, negative = np.asarray(positive, np.float64), np.asarray(negative, np.float64)
    ranks = np.argsort(np.argsort(np.concatenate([positive, negative]), kind="stable"), kind="stable") + 1.0
    values = np.concatenate([positive, negative])
    for v in np.unique(values):  # average ranks of ties
        tied = values == v
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
