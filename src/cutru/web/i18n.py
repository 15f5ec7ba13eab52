"""Words of the web interface, Vietnamese first (``locale/vi.toml``), English by choice
(``locale/en.toml``). A key missing in English falls back to Vietnamese, then to the key
itself, so a page never breaks for want of a translation."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

LANGUAGES = ("vi", "en")
DEFAULT = "vi"


@cache
def _load(lang: str) -> dict[str, dict[str, Any]]:
    text = resources.files("cutru.web").joinpath(f"locale/{lang}.toml").read_text("utf-8")
    return tomllib.loads(text)


def language(value: str | None) -> str:
    return value if value in LANGUAGES else DEFAULT


@dataclass(frozen=True)
class Translator:
    """``t("nav.search")``; ``t.rule(id)``, ``t.reason(code)``, ``t.enum(kind, value)``,
    ``t.op(name)`` and ``t.article(text)`` for the vocabularies of the registry."""

    lang: str

    def _table(self, table: str, key: str, *, fallback: bool = True) -> str | None:
        for lang in (self.lang, DEFAULT) if fallback else (self.lang,):
            found = _load(lang).get(table, {}).get(key)
            if isinstance(found, str):
                return found
        return None

    def __call__(self, key: str, /, **values: Any) -> str:
        text = self._table("ui", key) or key
        return text.format(**values) if values else text

    def maybe(self, key: str) -> str | None:
        """The text of ``key`` if one is written (optional hints)."""
        return self._table("ui", key)

    def rule(self, rule_id: str) -> str | None:
        """The explanation of a rule of the law or of an input rule, if one is written in
        this language (otherwise the error's own message, in English, is shown)."""
        return self._table("rules", rule_id, fallback=False)

    def reason(self, code: str) -> str:
        return self._table("reasons", code) or code

    def enum(self, kind: str, value: str | None) -> str:
        if value is None:
            return ""
        found = _load(self.lang).get("enums", {}).get(kind, {}).get(value)
        if not isinstance(found, str):
            found = _load(DEFAULT).get("enums", {}).get(kind, {}).get(value)
        return found if isinstance(found, str) else value

    def op(self, operation: str) -> str:
        return self._table("operations", operation) or operation

    def article(self, text: str | None) -> str:
        """A legal basis in this language: ``Law on Residence 68/2020/QH14 Art. 27(3)`` reads
        ``Luật Cư trú 68/2020/QH14 Điều 27(3)`` in Vietnamese."""
        if not text:
            return ""
        words = _load(self.lang).get("article_words", {})
        for english, local in sorted(words.items(), key=lambda kv: -len(kv[0])):
            text = re.sub(rf"\b{re.escape(english)}(?=\s|$)", str(local), text)
        return text
