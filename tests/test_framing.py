"""Training faces cut the page's way (`train.framing`, `crop_faces(stretch_edges=True)`), and the batches
that draw them."""

import numpy as np
from PIL import Image

from animerec.crop import crop_faces
from animerec.detect import Box
from train.framing import framed_or_own, page_framed


def gradient(height=100, width=120):
    """A picture in which every pixel's colour says where it is."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 2, y * 2, np.full_like(x, 90)], axis=-1).astype(np.uint8)


class FixedDetector:
    """Finds the boxes it is given, in every picture whose width is in `widths`."""

    def __init__(self, boxes, widths):
        self.boxes, self.widths = boxes, widths

    def detect(self, image):
        return list(self.boxes) if image.shape[1] in self.widths else []


def page_crop(image, box, size):
    return crop_faces(image, [box], size, stretch_edges=True)[0]


def test_a_box_well_inside_the_picture_is_cut_exactly_as_the_page_cuts_it():
    image, box = gradient(), Box(40, 30, 30, 30)
    np.testing.assert_array_equal(page_crop(image, box, 48), crop_faces(image, [box], 48)[0])


def test_a_box_at_the_edge_stays_square_and_centred_the_outside_filled_by_the_stretched_edge():
    image, box = gradient(), Box(0, 0, 50, 50)  # the widened box reaches 10 px past the top left
    crop = page_crop(image, box, 70)  # 70 px: one pixel per pixel of the widened box
    assert crop.shape == (70, 70, 3)
    np.testing.assert_array_equal(crop[:10, :10], np.broadcast_to(image[0, 0], (10, 10, 3)))
    np.testing.assert_array_equal(crop[10:, 10:], image[:60, :60])
    # The page clamps instead and stretches what is left: the face moves off the centre.
    assert not np.array_equal(crop_faces(image, [box], 70)[0], crop)


def test_page_framed_cuts_around_the_face_found_or_the_whole_crop_and_keeps_unreadable_files_out(tmp_path):
    found_here, no_face, broken = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    Image.fromarray(gradient(100, 120)).save(found_here)
    Image.fromarray(gradient(90, 90)).save(no_face)
    broken.write_bytes(b"not an image")
    detector = FixedDetector([Box(40, 30, 30, 30), Box(0, 0, 10, 10)], widths={120})
    images, found, read = page_framed([found_here, no_face, broken], 32, detector, cache_dir=tmp_path / "cache")
    assert images.shape == (3, 32, 32, 3) and list(found) == [True, False, False] and list(read) == [True, True, False]
    np.testing.assert_array_equal(images[0], page_crop(gradient(100, 120), Box(40, 30, 30, 30), 32))  # the larger box
    np.testing.assert_array_equal(images[1], page_crop(gradient(90, 90), Box(0, 0, 90, 90), 32))
    own = np.full((3, 32, 32, 3), 7, np.uint8)
    kept = framed_or_own(own, images, read)
    assert (kept[2] == 7).all() and np.array_equal(kept[:2], images[:2]) and (own == 7).all()
    again = page_framed([found_here, no_face, broken], 32, FixedDetector([], set()), cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(again[0], images)  # from the cache: the detector is not asked again


def test_a_share_of_every_pool_is_drawn_in_its_page_framing():
    from train.batches import TrainingBatches

    images = np.full((400, 8, 8, 3), 10, np.uint8)
    unknown = np.full((60, 8, 8, 3), 20, np.uint8)
    strangers = np.full((60, 8, 8, 3), 30, np.uint8)
    framed = (images + 100, unknown + 100, strangers + 100)
    batches = TrainingBatches(images, np.arange(400) % 4, 4, np.ones(400), 400, unknown, seed=0,
                              strangers=strangers, degrade_fraction=0.0, framed=framed, framing_fraction=0.5)
    x = batches[0][0]
    values = x[:, 0, 0, 0]
    for own in (10, 20, 30):
        share = np.mean(values[np.isin(values, (own, own + 100))] == own + 100)
        assert 0.35 < share < 0.65, f"about half of the pool of grey {own} in its framing"
    plain = TrainingBatches(images, np.arange(400) % 4, 4, np.ones(400), 400, unknown, seed=0, strangers=strangers,
                            degrade_fraction=0.0)[0][0]
    assert set(np.unique(plain[:, 0, 0, 0])) == {10, 20, 30}, "none without the framed copies"
