"""Drawing: boxes land where the faces are, also on a reduced display copy; captions stay
legible at a phone's width and off the other faces."""

import numpy as np
from PIL import Image

from animerec import Box, draw_faces
from measure.detection import read_boxes
from animerec.draw import PALETTE, UNKNOWN_COLOUR, _overlap, caption_layout, display_copy, face_caption, face_colour
from animerec.recognize import Recognition


def face(box, label="a", name="Alice", score=0.9):
    return Recognition(Box(*box), label, name, score, [(label, score)])


def test_drawing_returns_a_same_sized_copy_and_leaves_the_original_alone():
    image = np.full((200, 300, 3), 255, np.uint8)
    drawn = draw_faces(image, [face((50, 60, 80, 80))])
    assert drawn.shape == image.shape and image.min() == 255
    assert (drawn != 255).any(axis=2)[60 + 40, 50 - 1]  # the box's left edge is drawn at the box


def test_boxes_are_scaled_onto_a_display_copy():
    image = np.full((1000, 4000, 3), 255, np.uint8)
    shown, scale = display_copy(image, 2000)
    assert shown.shape == (500, 2000, 3) and scale == 0.5
    drawn = draw_faces(shown, [face((2000, 400, 200, 200))], scale)
    assert (drawn[:, :, :] != 255).any(axis=2)[200 + 50, 1000 - 1]
    assert display_copy(np.zeros((600, 800, 3), np.uint8), 2048)[1] == 1.0


def test_a_face_crop_is_enlarged_so_that_its_caption_fits_inside_it():
    crop = np.full((64, 48, 3), 255, np.uint8)
    shown, scale = display_copy(crop, 2048)
    assert shown.shape == (512, 384, 3) and scale == 8.0
    named = face((2, 2, 44, 60), name="Suzukaze Aoba", score=0.95)
    drawn = draw_faces(shown, [named], scale)
    assert drawn.shape == shown.shape
    assert (drawn[:, -1] == 255).all(), "the caption stops short of the right edge"


def test_a_caption_too_wide_for_the_image_is_drawn_smaller_or_as_the_number_alone():
    from PIL import Image, ImageDraw

    from animerec.draw import _fitting_caption

    draw = ImageDraw.Draw(Image.new("RGB", (10, 10)))
    long = face((0, 0, 5, 5), name="Elizabeth Rose Bloodflame", score=0.93)
    caption, font = _fitting_caption(draw, 0, long, 20, 1000)
    assert caption == "1 Elizabeth Rose Bloodflame 93%" and font.size == 20
    caption, font = _fitting_caption(draw, 0, long, 20, 150)
    left, _, right, _ = draw.textbbox((0, 0), caption, font=font)
    assert caption == "1 Elizabeth Rose Bloodflame 93%" and 10 <= font.size < 20 and right - left <= 150
    assert _fitting_caption(draw, 0, long, 20, 60)[0] == "1"


def test_colours_and_captions():
    known, unknown = face((0, 0, 5, 5)), face((0, 0, 5, 5), "unknown", "Unknown", 0.2)
    assert face_colour(0, known) == PALETTE[0] and face_colour(8, known) == PALETTE[1]
    assert face_colour(0, unknown) == UNKNOWN_COLOUR
    assert face_caption(0, known) == "1 Alice 90%"
    assert face_caption(1, unknown) == "2 Unknown", "an Unknown face's score is another character's"
    assert face_caption(2, Recognition(Box(0, 0, 5, 5), None, None, 0.0, [])) == "3"


PHONE = 360  # px: the width a phone shows an image at, in the page's one column


def outline(box):
    return (box.x, box.y, box.x + box.w, box.y + box.h)


def test_captions_grow_with_the_image_so_they_read_the_same_at_a_phones_width():
    for width in (360, 725, 1024, 4000):
        (caption,) = caption_layout([face((width // 4, 300, width // 2, width // 2))], (3000, width))
        assert caption.text == "1 Alice 90%"
        assert caption.font_size * PHONE / width >= 11.5, width


def test_a_caption_that_would_cover_another_face_goes_below_its_own_box():
    left, right = face((100, 200, 150, 150), name="Elizabeth Rose Bloodflame"), face((260, 40, 150, 150))
    first, second = caption_layout([left, right], (600, 1000))
    assert first.text == "1 Elizabeth Rose Bloodflame 90%"
    assert first.rectangle[1] >= 200 + 150, "below the box: above it, it would cover the second face"
    assert second.rectangle[3] <= 40, "above its own box, where nothing is in the way"
    assert not _overlap(first.rectangle, second.rectangle)


def test_a_caption_blocked_at_the_boxs_left_edge_goes_flush_with_its_right_edge():
    # The second face's lower right corner sits just above the first face's left part.
    below, above = face((300, 200, 300, 300)), face((100, 100, 300, 80))
    first, _ = caption_layout([below, above], (800, 1000))
    assert first.text == "1 Alice 90%"
    assert first.rectangle[3] <= 200, "above its box"
    assert first.rectangle[2] == 300 + 300 + 4, "flush with the box's right edge (outline width 4)"
    assert not _overlap(first.rectangle, outline(above.box))


def test_with_no_free_place_for_the_name_a_caption_is_the_faces_number():
    # A tight row of faces filling the image's height: above and below are outside the image,
    # inside the top edge the long name runs over the neighbour.
    faces = [face((10 + 110 * i, 0, 100, 300), name="Elizabeth Rose Bloodflame") for i in range(3)]
    captions = caption_layout(faces, (300, 340))
    assert [c.text for c in captions] == ["1", "2", "3"]
    for i, caption in enumerate(captions):
        assert not any(_overlap(caption.rectangle, outline(f.box)) for j, f in enumerate(faces) if j != i)


def test_on_real_scenes_captions_are_legible_on_a_phone_never_cover_each_other_and_rarely_a_face(data):
    """The hand-marked faces of `scenes/`, each captioned with the longest name the model knows."""
    scenes, covering, numbers, count = data / "scenes", 0, 0, 0
    for name, boxes in read_boxes(scenes / "boxes.csv").items():
        width, height = Image.open(scenes / name).size
        faces = [face(tuple(b), name="Elizabeth Rose Bloodflame", score=0.99) for b in boxes]
        captions = caption_layout(faces, (height, width))
        for i, caption in enumerate(captions):
            count += 1
            assert caption.font_size * PHONE / width >= 11.5, name
            covering += any(_overlap(caption.rectangle, outline(f.box)) for j, f in enumerate(faces) if j != i)
            numbers += caption.text == f"{i + 1}"
            assert not any(_overlap(caption.rectangle, other.rectangle) for other in captions[:i]), name
    # Measured on 2026-11-25: none covers another face, 25 of 349 are the number alone.
    assert count > 300 and covering <= 3 and numbers / count <= 0.1, (covering, numbers, count)
