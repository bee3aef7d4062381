"""Few-shot episodes on the gallery's embeddings: enrol k faces of each new character, name the
rest, with the model's characters and the unknown rule still in play (open-set)."""

import numpy as np

from animerec.model import naming_scores
from animerec.recognize import gallery_score

SHOTS = (1, 3, 5)


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


def draw_episode(embeddings, labels, pool, shots, rng, skip_small=False):
    """Draw `shots` faces per class from `pool` to enrol; the rest of the pool are queries.
    Returns (prototypes (C, D), query indices, query labels as class positions), or None when a
    class has too few faces (with `skip_small`, such classes are left out of the episode)."""
    classes = np.array([c for c in np.unique(labels[pool]) if not skip_small or (labels[pool] == c).sum() > shots])
    if len(classes) == 0:
        return None
    prototypes, queries = [], []
    for c in classes:
        members = rng.permutation(pool[labels[pool] == c])
        if len(members) <= shots:
            return None
        mean = embeddings[members[:shots]].mean(axis=0)
        prototypes.append(mean / max(np.linalg.norm(mean), 1e-12))
        queries.extend(members[shots:])
    queries = np.array(queries)
    positions = np.searchsorted(classes, labels[queries])
    return np.stack(prototypes), queries, positions


def judge_fewshot(score_of, newcomers, few, pool, unknown_outputs, known, threshold, curve, draws, rng,
                  scene_outputs=None):
    """k-shot accuracy among new characters with the model and the unknown rule in play, and
    what the gallery does to unknown and known faces (and to the faces found in the held-out
    scenes), on the held-out half."""
    model_scores = score_of(newcomers)
    unknown_model = score_of(unknown_outputs)
    known_outputs, known_labels = known
    known_model = score_of(known_outputs)
    known_right = naming_scores(known_outputs).argmax(axis=1) == known_labels
    scene_model = score_of(scene_outputs) if scene_outputs is not None else None
    table = {}
    for shots in SHOTS:
        accuracy, closed, rejected, kept, scenes_rejected = [], [], [], [], []
        for _ in range(draws):
            episode = draw_episode(newcomers.embeddings, few.labels, pool, shots, rng)
            if episode is None:
                continue
            prototypes, queries, positions = episode

            def best(embeddings):
                similarity = embeddings @ prototypes.T
                return similarity.argmax(axis=1), gallery_score(similarity.max(axis=1), embeddings, curve)

            nearest, score = best(newcomers.embeddings[queries])
            closed.append(np.mean(nearest == positions))
            gallery_wins = score > model_scores[queries]
            accuracy.append(np.mean(gallery_wins & (nearest == positions) & (score >= threshold)))
            _, score = best(unknown_outputs.embeddings)
            rejected.append(np.mean(np.maximum(score, unknown_model) < threshold))
            _, score = best(known_outputs.embeddings)
            kept.append(np.mean(known_right & (known_model >= score) & (known_model >= threshold)))
            if scene_outputs is not None and len(scene_outputs.embeddings):
                _, score = best(scene_outputs.embeddings)
                scenes_rejected.append(np.mean(np.maximum(score, scene_model) < threshold))
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
