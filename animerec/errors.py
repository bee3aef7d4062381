"""The library's exceptions. Each message is a sentence a person can act on; the page shows it
with `st.error` and the command line prints it on one line."""


class AnimerecError(Exception):
    """Base class of every error the library raises on purpose."""


class ImageError(AnimerecError):
    """The bytes could not be turned into an image."""


class EmptyImageError(ImageError):
    """The input has no bytes at all."""


class NotAnImageError(ImageError):
    """The bytes are not in an image format we can read."""


class TruncatedImageError(ImageError):
    """The file starts like an image but is cut short or corrupt."""


class ImageTooLargeError(ImageError):
    """The image's header declares more pixels than we are willing to decode."""


class CascadeError(AnimerecError):
    """The face-detector cascade file is missing, unreadable or not the expected file."""


class ModelError(AnimerecError):
    """A model directory is missing or broken."""


class GalleryError(AnimerecError):
    """A gallery file is unreadable or made by another model, or a name cannot be enrolled."""
