"""animerec: find anime faces in an image and name the characters.

    image = decode_image(data)                 # bytes -> (H, W, 3) uint8 RGB
    detector = load_detector()                 # the lbpcascade_animeface cascade and the face check
    recognizer = load_recognizer()             # models/default (or ANIMEREC_MODEL)
    faces = recognize(image, detector, recognizer)   # [Recognition(box, label, name, score, top_k, source, colourless)]
    annotated = draw_faces(image, faces)

    gallery = Gallery.for_model(recognizer)    # characters enrolled from a few pictures
    crops = enrolment_crops(images, detector, recognizer.input_size).crops
    gallery.add("Suzukaze Aoba", recognizer.run(crops).embeddings)
    faces = recognize(image, detector, recognizer, gallery=gallery)

Boxes are (x, y, w, h) in pixels of the decoded, EXIF-rotated RGB image. No face is `[]`.
Importing this package does not import TensorFlow; `load_recognizer` does.
"""

from animerec.crop import crop_faces
from animerec.decode import decode_image
from animerec.detect import Box, DetectorSettings, FaceDetector, face_outline, load_detector
from animerec.draw import draw_faces
from animerec.errors import (
    AnimerecError,
    CascadeError,
    EmptyImageError,
    GalleryError,
    ImageError,
    ImageTooLargeError,
    ModelError,
    NotAnImageError,
    TruncatedImageError,
)
from animerec.gallery import Gallery
from animerec.model import Character, Recognizer, load_recognizer
from animerec.recognize import Analysis, Recognition, analyse, enrolment_crops, name_faces, recognize

__all__ = [
    "AnimerecError", "Analysis", "Box", "CascadeError", "Character", "DetectorSettings",
    "EmptyImageError", "FaceDetector", "Gallery", "GalleryError", "ImageError", "ImageTooLargeError", "ModelError",
    "NotAnImageError", "Recognition", "Recognizer", "TruncatedImageError", "analyse",
    "crop_faces", "decode_image", "draw_faces", "enrolment_crops", "face_outline", "load_detector", "load_recognizer",
    "name_faces", "recognize",
]
