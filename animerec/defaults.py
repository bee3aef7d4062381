"""Every default the page, the command line and the trainer share, in one place."""

# Detection, chosen on ../shared/data/scenes by `python -m measure detection` (the
# README's table has the figures): upstream's settings on the full image miss tilted and many
# other faces and are slow. A coarser scale step with fewer neighbours on a 448 px copy, plus two
# cheap passes on a small copy turned 20 degrees each way, find more faces, as precisely, in a
# quarter of the time.
SCALE_FACTOR = 1.2
MIN_NEIGHBORS = 3
MIN_SIZE = 24  # pixels of the decoded image
# The upright pass runs on a copy whose longer side is at most this; boxes are mapped back.
DETECT_MAX_SIDE = 448
# The passes, in degrees: 0 is upright; the others search a turned copy, for tilted faces.
DETECT_ANGLES = (0, -20, 20)
UPRIGHT_ONLY = (0,)
# The turned passes search a copy at most this large: tilted faces are mostly large ones.
DETECT_TURNED_MAX_SIDE = 224
# When nothing is found, the picture is searched again inside a plain margin of this share of its
# longer side: the cascade misses a face that fills the frame, such as an enlarged crop.
RETRY_MARGIN = 0.3

# Cropping: the detector's box is tight around eyes and chin; the training crops show hair too.
CROP_MARGIN = 0.2  # of the box's width and height, added on every side

# The face as drawn and reported: the cascade's box runs from the brows to below the chin, while
# people's boxes take in the forehead and the top of the head. The outline is this many times
# the box's side, its centre raised by this share of the box's height: medians of the 165 boxes
# the detector matched in one half of ../shared/data/scenes, checked on the other half (`python
# -m measure detection` gives both figures).
OUTLINE_SCALE = 1.17
OUTLINE_RAISE = 0.24

# Recognition.
THRESHOLD = 0.5  # used when the model's card names none
TOP_K = 3
# An Unknown face whose closest character scored at least this share of the threshold is a near
# miss, and the page names that character as the closest; below it, nobody the model knows looks
# like the face, and the page says just that.
NEAR_MISS = 0.5
# A crop whose mean absolute Laplacian (grey levels per pixel, at the model's input size) is
# below this has no line in it: a flat colour or a smooth gradient, never a face. All 10,131
# training crops measure at least 3, even shrunk to 64 px and enlarged back.
MIN_DETAIL = 1.0
# A crop in which under MIN_COLOURFUL_SHARE of the pixels show a colour (R, G and B spread over
# more than COLOURFUL_CHROMA levels) has almost no colour: black-and-white or one-tint art. 132
# of the 10,131 crops of faces/ measure so. The model names such faces far less often, since
# hair and eye colour are what tell characters apart (`python -m train evaluate`'s
# "colourless_faces"), and the page says so when one is Unknown.
COLOURFUL_CHROMA = 40
MIN_COLOURFUL_SHARE = 0.005

# Drawing: a smaller image is enlarged to this longer side before its boxes and names are drawn,
# so that a caption fits and stays sharp on a thumbnail or a face crop.
ANNOTATED_MIN_SIDE = 512

# Decoding: refuse images whose header declares more pixels than this.
MAX_PIXELS = 40_000_000
