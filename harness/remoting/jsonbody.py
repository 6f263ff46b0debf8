"""JSON bodies as RocketMQ writes them: fastjson may emit bare numeric object keys ({0:"addr"})."""
from __future__ import annotations

import json
import re
from typing import Any

# A bare integer key right after '{' or ',' (and optional blanks), followed by ':'. Applied outside strings only.
_BARE_KEY = re.compile(r'([{,]\s*)(-?\d+)(\s*:)')
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def loads(data: bytes | str) -> Any:
    """Parse a body that may contain fastjson's bare numeric map keys."""
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray, memoryview)) else data
    try:
        return json.loads(text)
    except ValueError:
        return json.loads(_quote_bare_keys(text))


def _quote_bare_keys(text: str) -> str:
    out: list[str] = []
    pos = 0
    for match in _STRING.finditer(text):
        out.append(_BARE_KEY.sub(r'\1"\2"\3', text[pos:match.start()]))
        out.append(match.group(0))
        pos = match.end()
    out.append(_BARE_KEY.sub(r'\1"\2"\3', text[pos:]))
    return "".join(out)


def dumps(obj: Any) -> bytes:
    """Standard JSON (quoted keys), compact; fastjson-based Java clients read quoted numeric keys fine."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
