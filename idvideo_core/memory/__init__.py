"""Low-VRAM machinery shared by every backbone: memory modes, offloading, block swap, fp8 storage, VAE tiling.

Typical use in a loader/sampler::

    plan = resolve_mode("auto", model_sizes(parts), device)      # reads ComfyUI's --lowvram/--novram/--cpu
    mgr = ModelManager(plan); mgr.add("transformer", dit, blocks="transformer_blocks"); ...
    print(mgr.summary())
    with mgr.use("transformer") as dit: ...                       # block swap hooks active inside
    with mgr.use("vae") as vae, vae_memory(vae, plan.vae_tiling): video = vae.decode(z).sample
"""
from .blockswap import BlockSwapper, SwapEvent
from .fp8 import DEFAULT_SKIP, Fp8Linear, Fp8Report, dequantize_fp8, quantize_fp8, quantize_module_fp8
from .manager import ModelManager, model_sizes, plan_and_manage
from .modes import MemoryMode, MemoryPlan, ModelSizes, resolve_mode
from .moves import ParkedWeights, devices_of, module_bytes
from .sequential import SequentialOffload
from .vae_tiling import COGVIDEOX_TILES, WAN_TILES, TileSettings, configure_vae, vae_memory

__all__ = [
    "BlockSwapper", "SwapEvent", "DEFAULT_SKIP", "Fp8Linear", "Fp8Report", "dequantize_fp8", "quantize_fp8",
    "quantize_module_fp8", "ModelManager", "model_sizes", "plan_and_manage", "MemoryMode", "MemoryPlan",
    "ModelSizes", "resolve_mode", "ParkedWeights", "devices_of", "module_bytes", "SequentialOffload",
    "COGVIDEOX_TILES", "WAN_TILES", "TileSettings", "configure_vae", "vae_memory",
]
