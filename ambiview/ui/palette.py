"""Colours shared by the 2D overlays and the 3D view, without Qt, so the pure-VTK scene uses the same palette."""
from __future__ import annotations

import colorsys

_GOLDEN = 0.618033988749895


def hypothesis_rgb(i: int) -> tuple[int, int, int]:
    """A distinct, bright colour for hypothesis i as 0-255 RGB: hues a golden-ratio step apart, so neighbours never
    look alike; the first is cyan-green, away from the yellow box prompt."""
    r, g, b = colorsys.hsv_to_rgb((0.45 + i * _GOLDEN) % 1.0, 0.7, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)
