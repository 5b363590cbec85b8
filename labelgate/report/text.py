"""Text from the data made safe to print: no control character acts where it is shown."""

from __future__ import annotations

# C0 controls but tab, line feed and carriage return -> their Unicode control pictures
# (U+2400..U+241F, ESC shows as ␛), DEL -> ␡, C1 controls (0x80-0x9F) -> U+FFFD
_CONTROLS = {c: 0x2400 + c for c in range(32) if c not in (9, 10, 13)}
_CONTROLS |= {0x7F: 0x2421} | dict.fromkeys(range(0x80, 0xA0), 0xFFFD)


def visible_controls(text: str) -> str:
    """`text` with every control character a name or value may carry shown as a visible
    symbol: an escape sequence in a label or column name (``\\x1b]0;title\\x07``) must not
    act in the terminal that prints report.md, in the Prefect UI or in a plot (issue 27)."""
    return text.translate(_CONTROLS)
