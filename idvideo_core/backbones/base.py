"""What a loaded video model looks like to the rest of the pack [socket IDV_MODEL]."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional


@dataclass
class LoadedModel:
    family: str                      # "consisid", "concatid_wan", "phantom_wan", "wan"
    transformer: Any
    vae: Any
    scheduler_config: dict
    text_encoder: Any = None
    tokenizer: Any = None
    dtype: Any = None                # compute dtype of the transformer
    device: Any = None               # compute device
    source: Optional[Path] = None
    memory: Any = None               # idvideo_core.memory manager, when one is attached
    options: dict = field(default_factory=dict)

    @property
    def config(self):
        return self.transformer.config

    def describe(self) -> str:
        return f"{self.family} from {self.source} ({self.dtype}, {self.device})"
