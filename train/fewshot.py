"""Few-shot episodes judged as the page judges: enrol k faces of each new character in a
`Gallery`, name the rest by the library's own rule (`animerec.recognize.candidates`), with the
model's characters and the unknown rule still in play (open-set)."""

import numpy as np

from animerec.gallery import Gallery
from animerec.model import Outputs
from animerec.recognize import candidates, outputs_analysis
from train.dataset import FaceSet, near_duplicate_groups

SHOTS = (1, 3, 5)


def distinct_faces(faces):
    """`faces` (a FaceSet) keeping one face of each group of near-duplicates
    (`near_duplicate_groups`, as the training split keeps them on one side): the same picture
    twice would count twice among the strangers calibration must reject, and could be enrolled
    in an episode and then asked about. Returns (the FaceSet, how many faces were dropped)."""
    groups = near_duplicate_groups(faces.images)
    keep = np.sort(np.unique(groups, return_index=True)[1])
    kept = FaceSet(faces.images[keep], faces.labels[keep], faces.classes, [faces.files[i] for i in keep])
    return kept, len(faces.labels) - len(keep)


def split_each_class(labels, rng, share):
    """Two index arrays splitting each class of `labels` at random, `share` (at least one face)
    in the first."""
    first, second = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.nonzero(labels == c)[0])
        cut = max(1, int(share * len(members)))
        first.extend(members[:cut])
        second.extend(members[cut:])
    return np.array(sorted(first)), np.array(sorted(second))


def take(outputs, index):
    """The Outputs of the faces at `index`."""
    return Outputs(*(None if part is None else part[index] for part in outputs))


def best_names(outputs, scorer, characters, gallery=None):
    """(index of each face's best candidate, its score), by the page's own rule: the model's
    `characters` are indices 0..C-1, the gallery's enrolled characters follow in its order."""
    return candidates(outputs_analysis(outputs, scorer), characters, gallery, scorer).best()


def enrol(embeddings, groups, names, dimension):
    """A Gallery of one character per group of row indices of `embeddings`, as the page enrols."""
    gallery = Gallery("judging", dimension)
    for name, rows in zip(names, groups):
        gallery.add(name, embeddings[rows])
    return gallery


def draw_episode(labels, pool, shots, rng, skip_small=False):
    """Draw `shots` faces per class from `pool` to enrol; the rest of the pool are queries.
    Returns (classes, faces to enrol per class, query indices, query labels as class positions),
    or None when a class has too few faces (with `skip_small`, such classes are left out)."""
    classes = np.array([c for c in np.unique(labels[pool]) if not skip_small or (labels[pool] == c).sum() > shots])
    if len(classes) == 0:
        return None
    enrolled, queries = [], []
    for c in classes:
        members = rng.permutation(pool[labels[pool] == c])
        if len(members) <= shots:
            return None
        enrolled.append(members[:shots])
        queries.extend(members[shots:])
    queries = np.array(queries)
    return classes, enrolled, queries, np.searchsorted(classes, labels[queries])


def judge_fewshot(scorer, characters, newcomers, few, pool, unknown_outputs, known, threshold, draws, rng,
                  scene_outputs=None):
    """k-shot accuracy among new characters with the model and the unknown rule in play, and
    what the gallery does to unknown and known faces (and to the faces found in the held-out
    scenes), on the held-out half."""
    known_outputs, known_labels = known
    dimension = newcomers.embeddings.shape[1]
    table = {}
    for shots in SHOTS:
        accuracy, closed, rejected, kept, scenes_rejected = [], [], [], [], []
        for _ in range(draws):
            episode = draw_episode(few.labels, pool, shots, rng)
            if episode is None:
                continue
            classes, enrolled, queries, positions = episode
            gallery = enrol(newcomers.embeddings, enrolled, [few.classes[c] for c in classes], dimension)
            index, score = best_names(take(newcomers, queries), scorer, characters, gallery)
            accuracy.append(np.mean((index == len(characters) + positions) & (score >= threshold)))
            closed.append(np.mean(gallery.cosines(newcomers.embeddings[queries]).argmax(axis=1) == positions))
            _, score = best_names(unknown_outputs, scorer, characters, gallery)
            rejected.append(np.mean(score < threshold))
            index, score = best_names(known_outputs, scorer, characters, gallery)
            kept.append(np.mean((index == known_labels) & (score >= threshold)))
            if scene_outputs is not None and len(scene_outputs.embeddings):
                _, score = best_names(scene_outputs, scorer, characters, gallery)
                scenes_rejected.append(np.mean(score < threshold))
        if not accuracy:
            continue  # a character has no more than `shots` held-out faces
        table[f"{shots}-shot"] = {
            "draws": len(accuracy),
            "top1_accuracy": round(float(np.mean(accuracy)), 4),
            "top1_accuracy_p5_p95": [round(float(np.percentile(accuracy, 5)), 4), round(float(np.percentile(accuracy, 95)), 4)],
            "top1_among_new_characters_only": round(float(np.mean(closed)), 4),
            "unknown_labelled_unknown": round(float(np.mean(rejected)), 4),
            "known_keep_correct_name": round(float(np.mean(kept)), 4),
        }
        if scenes_rejected:
            table[f"{shots}-shot"]["scene_faces_labelled_unknown"] = round(float(np.mean(scenes_rejected)), 4)
    table["characters"] = len(few.classes)
    table["held_out_faces"] = int(len(pool))
    return table
