"""One way to make a value JSON-safe (dates, Decimals, paths as text) for XCom and Jsonb columns."""

from __future__ import annotations

import json
from typing import Any


def jsonable(value: Any) -> Any:
    """The value as plain JSON types: anything json cannot encode becomes its str()."""
    return json.loads(json.dumps(value, default=str))
