"""crop_faces: margins, clamping at the image's edges, shapes."""

import numpy as np

from animerec import Box, crop_faces
from animerec.crop import resize_square
from conftest import gradient


def test_no_boxes_give_an_empty_batch_of_the_right_shape():
    crops = crop_faces(gradient(), [], 32)
    assert crops.shape == (0, 32, 32, 3) and crops.dtype == np.uint8


def test_one_crop_per_box_at_the_requested_size():
    crops = crop_faces(gradient(200, 100), [Box(10, 10, 30, 30), Box(100, 40, 50, 50)], 24)
    assert crops.shape == (2, 24, 24, 3)


def test_margin_widens_the_crop():
    image = np.zeros((100, 100, 3), np.uint8)
    image[40:60, 40:60] = 255  # a white square exactly filling the box
    tight = crop_faces(image, [Box(40, 40, 20, 20)], 20, margin=0.0)[0]
    wide = crop_faces(image, [Box(40, 40, 20, 20)], 20, margin=0.5)[0]
    assert tight.min() == 255
    assert wide[0, 0].tolist() == [0, 0, 0] and wide[10, 10].tolist() == [255, 255, 255]


def test_boxes_at_the_edge_are_clamped_to_the_image():
    image = gradient(64, 48)
    crops = crop_faces(image, [Box(0, 0, 20, 20), Box(50, 30, 20, 20), Box(-5, -5, 100, 100)], 16, margin=0.5)
    assert crops.shape == (3, 16, 16, 3)
    # The top-left corner of the clamped crop is the image's own corner.
    assert np.abs(crops[0, 0, 0].astype(int) - image[0, 0].astype(int)).max() <= 4


def test_a_box_outside_the_image_gives_a_black_crop_not_an_error():
    crops = crop_faces(gradient(64, 48), [Box(500, 500, 10, 10)], 16)
    assert crops.shape == (1, 16, 16, 3) and crops.max() == 0


def test_resize_square_shrinks_and_enlarges():
    assert resize_square(gradient(300, 200), 50).shape == (50, 50, 3)
    assert resize_square(gradient(10, 12), 50).shape == (50, 50, 3)
