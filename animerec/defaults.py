"""Every default the page, the command line and the trainer share, in one place."""

# Detection: lbpcascade_animeface's upstream settings.
SCALE_FACTOR = 1.1
MIN_NEIGHBORS = 5
MIN_SIZE = 24  # pixels of the decoded image
# The cascade runs on a copy whose longer side is at most this; boxes are mapped back.
# On ../shared/data/scenes 640 px beat the full 1024 px image on recall, precision and speed
# (python -m animerec.bench detection).
DETECT_MAX_SIDE = 640
# Extra passes on turned copies find tilted faces; () or (0,) is upright only.
DETECT_ANGLES = (0,)

# Cropping: the detector's box is tight around eyes and chin; the training crops show hair too.
CROP_MARGIN = 0.2  # of the box's width and height, added on every side

# Recognition.
THRESHOLD = 0.5  # used when the model's card names none
TOP_K = 3

# Decoding: refuse images whose header declares more pixels than this.
MAX_PIXELS = 40_000_000
