"""IDVideo core: identity-preserving video generation (ConsisID, Concat-ID, Phantom) on plain torch + diffusers.

Nothing in this package imports ComfyUI except :mod:`idvideo_core.bridge`, which adapts to ComfyUI when it is present
and falls back to plain behaviour when it is not.
"""
__version__ = "0.1.0"
