"""Wan2.1 backbone for the concatenation family (Concat-ID-Wan, Phantom-Wan).

Modules: ``keys`` (original ↔ diffusers names), ``loading`` / ``model`` (both file layouts, format from keys),
``rope`` (reference RoPE slots), ``transformer`` (our forward over diffusers' modules), ``schedulers``,
``references`` (letterbox + VAE), ``text`` (UMT5), ``adapter`` (what the sampling loop calls), ``refprep``
(Concat-ID face preprocessing), ``convert`` (pickle → safetensors CLI).
"""
