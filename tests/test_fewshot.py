"""Few-shot judging's faces: each picture counts once."""

import numpy as np

from train.dataset import FaceSet
from train.fewshot import distinct_faces


def test_near_duplicates_count_once_and_distinct_faces_all_stay():
    """A face saved twice (once a little brighter, as a re-encoded copy is) keeps one copy; faces
    unlike each other all stay, with their labels and files in order."""
    rng = np.random.default_rng(0)
    faces = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(4)]
    copy = np.clip(faces[1].astype(int) + 3, 0, 255).astype(np.uint8)
    images = np.stack(faces + [copy])
    kept, dropped = distinct_faces(FaceSet(images, np.array([0, 0, 1, 1, 0]), ["a", "b"],
                                           ["a/1.jpg", "a/2.jpg", "b/1.jpg", "b/2.jpg", "a/2 copy.jpg"]))
    assert dropped == 1
    assert kept.files == ["a/1.jpg", "a/2.jpg", "b/1.jpg", "b/2.jpg"] and kept.labels.tolist() == [0, 0, 1, 1]
    assert kept.classes == ["a", "b"] and kept.images.shape == (4, 32, 32, 3)
