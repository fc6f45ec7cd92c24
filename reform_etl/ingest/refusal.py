"""The shape every refusal of a file takes: a stable `code` (what the registry and the rule catalog key
on) and a bilingual `message` (what people read). Readers, workbooks and form titles each raise their
own subclass, so a caller still tells where the refusal came from."""

from __future__ import annotations


class Refusal(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message
