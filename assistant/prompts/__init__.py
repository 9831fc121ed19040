"""Versioned prompt templates (`answer-v1.md`, `condense-v1.md`) and the passage block the model reads."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ingest.errors import ConfigError
from retriever.types import Hit

HERE = Path(__file__).parent
NO_EVIDENCE_SENTINEL = "NO_EVIDENCE"
_PART = re.compile(r"^## (system|user)\s*$", re.M)
_FIELD = re.compile(r"\{(\w+)\}")
_TAG = re.compile(r"<(/?)(passages?|conversation)\b", re.I)
MAX_TURN_CHARS = 600
MAX_TURNS = 6


@dataclass(frozen=True, slots=True)
class Prompt:
    id: str  # e.g. answer-v1: recorded in Answer.models
    system: str
    user: str

    def messages(self, **values: str) -> list[dict]:
        """System and user messages with `{name}` fields filled in one pass (values are not re-read)."""
        return [{"role": "system", "content": _fill(self.system, values)},
                {"role": "user", "content": _fill(self.user, values)}]


def _fill(template: str, values: dict) -> str:
    return _FIELD.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def versions(name: str) -> list[str]:
    return sorted(p.stem.removeprefix(f"{name}-") for p in HERE.glob(f"{name}-*.md"))


def load(name: str, version: str) -> Prompt:
    """`load("answer", "v1")` reads assistant/prompts/answer-v1.md."""
    path = HERE / f"{name}-{version}.md"
    if not re.match(r"^[\w.-]{1,40}\Z", version) or not path.is_file():
        raise ConfigError(f"prompt version {version!r} has no {name} template in {HERE}; "
                          f"available: {', '.join(versions(name)) or 'none'}")
    parts = _PART.split(path.read_text(encoding="utf-8"))
    found = {parts[i]: parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}
    if set(found) != {"system", "user"}:
        raise ConfigError(f"prompt template {path} needs a '## system' and a '## user' part")
    return Prompt(f"{name}-{version}", found["system"], found["user"])


def _defang(text: str) -> str:
    """Passage text cannot close or open the data block it sits in."""
    return _TAG.sub(lambda m: f"&lt;{m.group(1)}{m.group(2)}", text)


def _attr(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def passages_block(hits: Sequence[Hit]) -> str:
    """Numbered, quoted passages: `<passage id="1" title="..." section="...">text</passage>`."""
    out = []
    for i, h in enumerate(hits, 1):
        attrs = {"id": str(i), "title": h.doc.title, "section": h.chunk.section_path, "type": h.doc.doc_type,
                 "updated": h.doc.updated_at[:10]}
        if h.chunk.page_start:
            attrs["page"] = str(h.chunk.page_start)
        head = " ".join(f'{k}="{_attr(v)}"' for k, v in attrs.items())
        out.append(f"<passage {head}>\n{_defang(h.chunk.text.strip())}\n</passage>")
    return "\n\n".join(out)


def conversation_block(history: Sequence[dict]) -> str:
    """The last few turns, each cut short: `user: ...` / `assistant: ...` lines."""
    turns = [t for t in history if t.get("role") in ("user", "assistant") and str(t.get("content", "")).strip()]
    lines = []
    for t in turns[-MAX_TURNS:]:
        text = " ".join(str(t["content"]).split())
        text = text if len(text) <= MAX_TURN_CHARS else text[:MAX_TURN_CHARS].rsplit(" ", 1)[0] + " ..."
        lines.append(f"{t['role']}: {_defang(text)}")
    return "\n".join(lines)
