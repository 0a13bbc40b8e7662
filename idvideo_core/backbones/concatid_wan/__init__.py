"""Concat-ID-Wan (stage 1 and AdaLN) on Wan2.1-T2V-1.3B: one clean reference latent frame after the video, RoPE at
t=f−1 and w+W, text cross-attention skipped for the reference, text-only CFG 5 with the reference in both branches,
DiffSynth flow-match Euler (shift 5). The shared Wan2.1 machinery is in ``backbones/wan``."""
