"""The charts' colours and font; a class has the same colour on every chart."""

from __future__ import annotations

CLASS_COLORS: dict[str, str] = {
    "covid": "#b5563c",
    "normal": "#3f7f5f",
    "pneumonia": "#3f6fa0",
}
NEUTRAL = "#9aa7b1"
ACCENT = "#1f6f8b"
INK = "#1b2a35"
FONT_FAMILY = "Source Sans Pro, Helvetica, Arial, sans-serif"


def class_color(name: str, i: int = 0) -> str:
    """The fixed colour of a class (a neutral palette for unknown names)."""
    palette = ("#8a6d3b", "#6b5b95", "#5b8a8a", "#8a5b6b")
    return CLASS_COLORS.get(name, palette[i % len(palette)])
