"""Phantom-Wan: references white-padded to the video size and appended as frames (stock sequential RoPE), 3-pass
CFG (image 5.0, text 7.5, negative = zero references + Wan's default negative prompt), UniPC with Phantom's exact
sigmas, noise drawn for F+K frames, at most 4 references. The shared Wan2.1 machinery is in ``backbones/wan``."""
