"""Answers as Slack Block Kit messages, always within Slack's limits.

Limits (api.slack.com/reference/block-kit): 50 blocks per message, 3,000 characters per section text,
10 elements per context block, 75 per button label, 150 per plain-text header, 40,000 per message text.
An answer that does not fit is shortened with a note pointing to Lore's web page, never rejected by Slack.
"""

from __future__ import annotations

from typing import Callable
from urllib.parse import urlencode

from assistant.types import Answer, Citation
from retriever.types import Hit

MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_TEXT = 40_000
MAX_FALLBACK = 3000  # notification and history text: the answer, not the whole message
MAX_ANSWER_SECTIONS = 6
MAX_QUOTE = 280
ACTION_UP, ACTION_DOWN = "lore_feedback_up", "lore_feedback_down"
STATUS = ":mag: Searching the knowledge base…"
TYPES = {"policy": "Policy", "spec": "Spec", "incident": "Incident"}
Link = Callable[[str, int | None, int | None], str]


def passage_link(base_url: str, chunk_id: str, start: int | None = None, end: int | None = None) -> str:
    """The web page's deep link to a passage, its quote highlighted (`/?passage=&start=&end=`)."""
    q = {"passage": chunk_id}
    if start is not None and end is not None:
        q |= {"start": str(start), "end": str(end)}
    return f"{base_url.rstrip('/')}/?{urlencode(q)}"


def escape(text: str) -> str:
    """Slack mrkdwn control characters; everything from documents goes through here."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int, more: str = "…") -> str:
    return text if len(text) <= limit else text[:max(0, limit - len(more))].rstrip() + more


def _label(text: str) -> str:
    return escape(text).replace("|", "¦")  # `|` would end a link's label early


def _section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, MAX_SECTION)}}


def _context(*texts: str) -> dict:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(t, MAX_SECTION)} for t in texts[:10]]}


def _chunks(text: str, size: int) -> list[str]:
    """Split at paragraph, then line, then word boundaries so no piece is over `size`."""
    out: list[str] = []
    while len(text) > size:
        cut = max(text.rfind("\n\n", 0, size), text.rfind("\n", 0, size), text.rfind(" ", 0, size))
        cut = cut if cut > size // 2 else size
        out.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    return out + ([text] if text else [])


def _section_path(section: tuple[str, ...] | list[str], title: str) -> str:
    parts = list(section)
    if parts and parts[0] == title:
        parts = parts[1:]  # the top heading is usually the title again
    return " › ".join(parts)


def _meta(section: str, page: int | None, doc_type: str, updated: str | None) -> str:
    bits = [escape(section)] if section else []
    if page:
        bits.append(f"p. {page}")
    bits.append(TYPES.get(doc_type, "Document"))
    if updated:
        bits.append(f"updated {updated[:10]}")
    return " · ".join(bits)


def _source(n: int, cites: list[Citation], link: Link, updated: dict[str, str]) -> dict:
    c = cites[0]
    head = f"*[{n}]* <{link(c.chunk_id, c.start, c.end)}|{_label(clip(c.title, 200))}>"
    meta = _meta(_section_path(c.section, c.title), c.page, c.doc_type, updated.get(c.doc_id))
    quotes = "\n".join(f">{escape(clip(' '.join(x.quote.split()), MAX_QUOTE))}" for x in cites[:3])
    return _section(f"{head}\n{meta}\n{quotes}")


def _hit(n: int, h: Hit, link: Link) -> dict:
    c, d = h.chunk, h.doc
    head = f"*{n}.* <{link(c.id, c.start, c.end)}|{_label(clip(d.title, 200))}>"
    return _section(f"{head}\n{_meta(_section_path(c.section, d.title), c.page_start, d.doc_type, d.updated_at)}")


def _feedback(trace_id: str) -> dict:
    def button(label: str, action: str) -> dict:
        return {"type": "button", "action_id": action, "value": trace_id,
                "text": {"type": "plain_text", "text": label, "emoji": True}}

    return {"type": "actions", "block_id": "lore_feedback",
            "elements": [button(":+1: Helpful", ACTION_UP), button(":-1: Not helpful", ACTION_DOWN)]}


def render_answer(answer: Answer, link: Link, *, updated: dict[str, str] | None = None,
                  asked: str | None = None) -> tuple[str, list[dict]]:
    """(fallback text, blocks) for one answer; `asked` heads a reply that is not under the question."""
    updated = {**{h.doc.id: h.doc.updated_at for h in answer.hits}, **(updated or {})}
    head: list[dict] = [_context(asked)] if asked else []
    tail = [_context(f"{'Not found' if answer.status == 'no_evidence' else answer.status.capitalize()} · "
                     f"confidence {answer.confidence:.2f} · trace `{answer.trace_id}`"), _feedback(answer.trace_id)]
    if answer.status == "no_evidence":
        body = [_section(f":warning: *Not found in the knowledge base.* {escape(answer.text)}")]
        sources = [_hit(i, h, link) for i, h in enumerate(answer.hits[:5], 1)]
        title = "*Closest sources* (none of them answers the question)"
    else:
        pieces = _chunks(escape(answer.text), MAX_SECTION)
        if len(pieces) > MAX_ANSWER_SECTIONS:
            pieces = pieces[:MAX_ANSWER_SECTIONS]
            pieces[-1] = clip(pieces[-1], MAX_SECTION - 60) + " _(answer shortened; the sources have the rest)_"
        body = [_section(p) for p in pieces]
        groups: dict[int, list[Citation]] = {}
        for c in answer.citations:
            groups.setdefault(c.marker, []).append(c)
        sources = [_source(n, cs, link, updated) for n, cs in sorted(groups.items())]
        title = "*Sources*"
    blocks = head + body
    if sources:
        room = MAX_BLOCKS - len(blocks) - len(tail) - 3  # divider, title, and a possible "more" line
        shown = sources[:max(room, 0)]
        blocks += [{"type": "divider"}, _section(title), *shown]
        if len(shown) < len(sources):
            blocks.append(_context(f"…and {len(sources) - len(shown)} more sources, shown in Lore's web page"))
    blocks += tail
    return fallback(answer), blocks


def fallback(answer: Answer) -> str:
    """The message's plain text: notifications, screen readers, and the thread's history for follow-ups."""
    return clip(answer.text, MAX_FALLBACK)


def render_notice(text: str, asked: str | None = None) -> tuple[str, list[dict]]:
    """A one-section message (an apology, a hint), optionally headed by the question."""
    blocks = ([_context(asked)] if asked else []) + [_section(text)]
    return clip(text, MAX_FALLBACK), blocks


def render_status(asked: str | None = None) -> tuple[str, list[dict]]:
    return render_notice(STATUS, asked)
