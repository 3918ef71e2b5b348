"""Text from files shown to people as one printable line (issue 25): the one place control characters
are escaped, shared by this runtime's command line and (through ``edgegan.text``) edgegan's.

A model file's contract, a manifest's file names or a device-results file may hold ESC sequences or
newlines; raw on stderr they forge a second "OK" line or recolour the terminal.
"""

from __future__ import annotations

import re
from typing import Any

MAX_LINE = 2000
# C0 and C1 controls, DEL, and the Unicode format characters that reorder or break what is shown
# (bidirectional overrides and isolates, line and paragraph separators, the byte-order mark).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")


def _escape(m: re.Match) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def one_line(text: Any, limit: int = MAX_LINE) -> str:
    """``text`` as one printable line: runs of whitespace (newlines included) become one space, every
    other control character is shown escaped (``\\x1b``), and the line is cut at ``limit``."""
    try:
        s = text if isinstance(text, str) else str(text)
    except Exception:  # noqa: BLE001 - an object whose str() fails still gets a line
        s = type(text).__name__
    s = " ".join(s.split())
    return _CONTROL.sub(_escape, s)[:limit]
