"""Seed lists for best-of-N: ``"1, 2, 3"`` or ranges ``"10-13"`` → ``[1, 2, 3]`` / ``[10, 11, 12, 13]``."""
from __future__ import annotations

from ..errors import InputError

MAX_SEED = 0xFFFFFFFFFFFFFFFF
MAX_SEEDS = 64


def parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    fix = "Write seeds separated by commas, e.g. '1, 2, 3' or a range '10-13'."
    for part in str(text).replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                a, b = part.split("-", 1) if not part.startswith("-") else (part, part)
                lo, hi = int(a), int(b)
                if hi < lo:
                    raise InputError(f"The seed range '{part}' runs backwards.", fix)
                seeds += list(range(lo, hi + 1))
            else:
                seeds.append(int(part))
        except ValueError as exc:
            raise InputError(f"'{part}' is not a seed (an integer).", fix) from exc
        if len(seeds) > MAX_SEEDS:
            raise InputError(f"More than {MAX_SEEDS} seeds were asked for.", "Use fewer seeds.")
    if not seeds:
        raise InputError("The seed list is empty.", fix)
    bad = [s for s in seeds if not 0 <= s <= MAX_SEED]
    if bad:
        raise InputError(f"Seed {bad[0]} is out of range (0 to {MAX_SEED}).", fix)
    return seeds
