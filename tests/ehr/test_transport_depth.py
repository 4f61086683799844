"""The JSON nesting check on the bracket skeleton agrees with the nesting of the parsed value.

``ehr.transport._too_deep`` reads the raw body, not the parsed value (issue 7), so it has to
get string literals right: brackets, quotes and backslashes inside strings must not count.
Each case is compared with a plain recursive depth of what ``json.loads`` returns.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from ehr.transport import MAX_JSON_DEPTH, _too_deep

# Characters that could fool a bracket count: every bracket, quote, backslash, and non-ASCII.
_TRICKY = ['"', "\\", "[", "]", "{", "}", '\\"', "\\\\", "\\]", "é", "\u2028", "a", ","]


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(_TRICKY) for _ in range(rng.randrange(6)))


def _value(rng: random.Random, depth: int) -> Any:
    kind = rng.randrange(5) if depth > 0 else rng.randrange(3)
    if kind == 0:
        return _text(rng)
    if kind == 1:
        return rng.choice([1, -2.5, None, True, False])
    if kind == 2:
        return ""
    if kind == 3:
        return [_value(rng, depth - 1) for _ in range(rng.randrange(4))]
    return {_text(rng): _value(rng, depth - 1) for _ in range(rng.randrange(4))}


def _body(value: Any, *, ascii_only: bool) -> bytes:
    return json.dumps(value, ensure_ascii=ascii_only).encode()


@pytest.mark.parametrize("seed", range(40))
def test_agrees_with_the_parsed_depth(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(25):
        value = [_value(rng, rng.randrange(1, 8))]
        body = _body(value, ascii_only=bool(rng.randrange(2)))
        depth = _depth(json.loads(body))
        for limit in (1, depth - 1, depth, depth + 1):
            if limit >= 1:
                assert _too_deep(body, limit) == (depth > limit), (body, limit)


@pytest.mark.parametrize(
    ("body", "depth"),
    [
        (b"[]", 1),
        (b'{"a": []}', 2),
        (b'["]]]]", "[[[["]', 1),
        (b'["\\\\", [[]]]', 3),  # an escaped backslash right before the closing quote
        (b'["\\"]", {"k\\\\": ["{"]}]', 3),  # an escaped quote, then a real string end
        (b'{"\\u005b": [[{"x": "}"}]]}', 4),
        (b'[{}, [], [[[]]], ""]', 4),
        ('["é]", {"ü": ["}"]}]'.encode(), 3),
    ],
)
def test_strings_do_not_count(body: bytes, depth: int) -> None:
    assert _depth(json.loads(body)) == depth
    assert not _too_deep(body, depth)
    assert _too_deep(body, depth - 1)


def test_the_limit_is_exact() -> None:
    at_limit = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    over = b"[" + at_limit + b"]"
    assert not _too_deep(at_limit, MAX_JSON_DEPTH)
    assert _too_deep(over, MAX_JSON_DEPTH)
    wide = b"[" + b",".join([b'{"a": [1, "]"]}'] * 1000) + b"]"
    assert not _too_deep(wide, 3)
    assert _too_deep(wide, 2)
