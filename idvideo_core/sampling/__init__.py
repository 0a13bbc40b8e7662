"""The one denoising loop every backbone uses (:func:`denoise`), with scheduler steppers and guidance helpers."""
from .loop import denoise  # noqa: F401
