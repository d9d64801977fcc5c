"""What a JSON value from a caller must satisfy before it reaches validation or the database.

The parser accepts some values that break later steps: PostgreSQL refuses NUL (``\\u0000``)
in text and JSONB and refuses ``Infinity`` (Python reads ``1e400`` as ``inf``), and deep
nesting exhausts Python's recursion in jsonschema and the JSON encoders (a 500). One
iterative walk finds the first such problem and names where it is.
"""

import math
from dataclasses import dataclass

# Far deeper than any real payload or schema, far shallower than the recursion limit.
MAX_DEPTH = 64


@dataclass(frozen=True)
class Problem:
    code: str
    message: str
    field: str


def find_problem(value, field: str, max_depth: int = MAX_DEPTH) -> Problem | None:
    """The first unstorable part of ``value`` (None when there is none); ``field`` names it."""
    stack = [(value, field, 1)]
    while stack:
        current, path, depth = stack.pop()
        if isinstance(current, dict | list):
            if depth > max_depth:
                # Named by the top field: the path itself would be max_depth names long.
                return Problem("too_deep", f"Nested more than {max_depth} levels deep.", field)
            items = current.items() if isinstance(current, dict) else enumerate(current)
            for key, child in items:
                child_path = f"{path}.{_printable(str(key))}"
                if isinstance(key, str) and "\x00" in key:
                    return Problem("invalid_text", _NUL, child_path)
                stack.append((child, child_path, depth + 1))
        elif isinstance(current, str):
            if "\x00" in current:
                return Problem("invalid_text", _NUL, path)
        elif isinstance(current, float) and not math.isfinite(current):
            return Problem(
                "invalid_number",
                "Numbers must be finite: NaN, Infinity and values beyond ±1.8e308 "
                "(e.g. 1e400) cannot be stored.",
                path,
            )
    return None


_NUL = "Text contains a NUL character (\\u0000)."


def _printable(text: str) -> str:
    return text.replace("\x00", "\\u0000")
