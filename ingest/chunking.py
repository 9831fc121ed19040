"""Structure-aware chunking: sections first, then the embedder's own token budget."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from typing import Protocol, Sequence

from ingest.errors import ConfigError
from ingest.markup import fence, unfence
from ingest.types import Block, Chunk, ParsedDoc

BLOCK_SEP = "\n\n"
_BREAKS = (re.compile(r"\n"), re.compile(r"(?<=[.!?;:])\s+"), re.compile(r"\s+"))


class TokenCounter(Protocol):
    """The part of an embedder the chunker needs: its tokenizer.

    >>> counter.count_tokens(["hello world"])  # -> [2]
    """

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...

    def token_offsets(self, text: str) -> list[tuple[int, int]]: ...


@dataclass(frozen=True, slots=True)
class Normalized:
    """A document's normalized text and each block's span in it."""

    text: str
    spans: tuple[tuple[int, int], ...]


def normalize(doc: ParsedDoc) -> Normalized:
    """Join block texts with blank lines; the result is what every chunk span indexes into."""
    parts, spans, pos = [], [], 0
    for i, b in enumerate(doc.blocks):
        if i:
            parts.append(BLOCK_SEP)
            pos += len(BLOCK_SEP)
        parts.append(b.text)
        spans.append((pos, pos + len(b.text)))
        pos += len(b.text)
    return Normalized("".join(parts), tuple(spans))


def _top_level(blocks: Sequence[Block]) -> int:
    """The heading level that delimits top-level sections (a lone document title is skipped)."""
    levels = [b.level for b in blocks if b.kind == "title"]
    if not levels:
        return 0
    top = min(levels)
    deeper = sorted({lv for lv in levels if lv > top})
    if levels.count(top) == 1 and deeper:
        return deeper[0]
    return top


@dataclass(slots=True)
class _Piece:
    start: int
    end: int
    tokens: int
    section: tuple[str, ...]
    top: int
    page: int | None
    heading: bool


class Chunker:
    """Packs a document's blocks into chunks that never cross a top-level section."""

    def __init__(self, counter: TokenCounter, max_tokens: int, min_fill: float = 0.5) -> None:
        if max_tokens < 16:
            raise ConfigError(f"chunk max_tokens must be at least 16, got {max_tokens}")
        if not 0.0 <= min_fill <= 1.0:
            raise ConfigError(f"chunk min_fill must be within [0, 1], got {min_fill}")
        self.counter = counter
        self.max_tokens = max_tokens
        self.min_fill = min_fill

    @property
    def fingerprint(self) -> str:
        return f"chunker-v2:{self.max_tokens}:{self.min_fill}"

    def chunk(self, doc_id: str, version: str, doc: ParsedDoc, title: str | None = None
              ) -> tuple[Normalized, list[Chunk]]:
        """Chunks with provenance; text before the first heading gets the document title as its section."""
        doc = self._fit_code(doc)
        norm = normalize(doc)
        fallback = tuple(t for t in [title or doc.title] if t)
        pieces = self._pieces(doc.blocks, norm)
        groups = self._pack(pieces)
        chunks = []
        texts = [norm.text[g[0].start:g[-1].end] for g in groups]
        counts = self.counter.count_tokens(texts) if texts else []
        for ordinal, (group, text, count) in enumerate(zip(groups, texts, counts)):
            body = [p for p in group if not p.heading] or group
            pages = [p.page for p in group if p.page is not None]
            chunks.append(Chunk(
                id=f"{doc_id}#{version[:12]}-{ordinal:04d}",
                doc_id=doc_id, version=version, ordinal=ordinal, text=text,
                section=body[0].section or fallback,
                page_start=min(pages) if pages else None,
                page_end=max(pages) if pages else None,
                start=group[0].start, end=group[-1].end,
                content_hash=hashlib.sha256(text.encode()).hexdigest(),
                token_count=count,
            ))
        return norm, chunks

    def _fit_code(self, doc: ParsedDoc) -> ParsedDoc:
        """Split code blocks over the budget into several fenced blocks at line ends, so a chunk never
        holds half a fence; a single line over the budget is still cut by `_split`, unfenced."""
        where = [i for i, b in enumerate(doc.blocks) if b.kind == "code"]
        if not where:
            return doc
        counts = self.counter.count_tokens([doc.blocks[i].text for i in where])
        blocks = list(doc.blocks)
        for i, n in reversed(list(zip(where, counts))):
            if n > self.max_tokens:
                blocks[i:i + 1] = [replace(doc.blocks[i], text=t) for t in self._code_parts(doc.blocks[i].text)]
        return replace(doc, blocks=tuple(blocks))

    def _code_parts(self, text: str) -> list[str]:
        mark, code = unfence(text)
        if not mark:
            return [text]  # not stored fenced (a caller-built block): `_split` cuts it like prose
        lines = code.split("\n")
        budget = self.max_tokens - self.counter.count_tokens([f"{mark}\n\n{mark}"])[0]
        counts = self.counter.count_tokens(lines)
        parts: list[list[str]] = [[]]
        used = 0
        for line, n in zip(lines, counts):
            if parts[-1] and used + n > budget:
                parts.append([])
                used = 0
            parts[-1].append(line)
            used += n
        out = []
        for part in parts:
            body = "\n".join(part).strip("\n")
            if body.strip():
                out.append(fence(body))
        return out or [text]

    def _pieces(self, blocks: Sequence[Block], norm: Normalized) -> list[_Piece]:
        top_level = _top_level(blocks)
        counts = self.counter.count_tokens([b.text for b in blocks])
        stack: list[tuple[int, str]] = []
        top = 0
        has_body = False  # headings with no text between them open one section together
        out: list[_Piece] = []
        for b, (s, e), n in zip(blocks, norm.spans, counts):
            heading = b.kind == "title"
            if heading:
                while stack and stack[-1][0] >= b.level:
                    stack.pop()
                stack.append((b.level, b.text))
                if b.level <= top_level and has_body:
                    top += 1
                    has_body = False
            else:
                has_body = True
            section = tuple(t for _, t in stack)
            if n <= self.max_tokens:
                out.append(_Piece(s, e, n, section, top, b.page, heading))
            else:
                for ss, ee, nn in self._split(norm.text, s, e):
                    out.append(_Piece(ss, ee, nn, section, top, b.page, False))
        return out

    def _split(self, text: str, start: int, end: int) -> list[tuple[int, int, int]]:
        """Cut an oversized block at token boundaries, preferring line, then sentence, then word ends."""
        offsets = self.counter.token_offsets(text[start:end])
        out, i = [], 0
        while i < len(offsets):
            j = min(i + self.max_tokens, len(offsets))
            lo, hi = start + offsets[i][0], start + offsets[j - 1][1]
            if j < len(offsets):
                window = text[lo:hi]
                for pat in _BREAKS:
                    cuts = [m.start() for m in pat.finditer(window) if m.start() > len(window) // 3]
                    if cuts:
                        hi = lo + cuts[-1]
                        break
                while j > i + 1 and start + offsets[j - 1][1] > hi:
                    j -= 1
                hi = start + offsets[j - 1][1]
            out.append((lo, hi, j - i))
            i = j
        return out

    def _pack(self, pieces: list[_Piece]) -> list[list[_Piece]]:
        groups: list[list[_Piece]] = []
        cur: list[_Piece] = []
        tokens = 0
        for p in pieces:
            boundary = bool(cur) and (
                p.top != cur[0].top
                or tokens + p.tokens > self.max_tokens
                or (p.heading and tokens >= self.min_fill * self.max_tokens)
            )
            if boundary:
                # never end a chunk on a dangling heading: carry trailing headings forward
                carry: list[_Piece] = []
                while len(cur) > 1 and cur[-1].heading and p.top == cur[-1].top:
                    carry.insert(0, cur.pop())
                groups.append(cur)
                cur = carry
                tokens = sum(c.tokens for c in carry)
                if cur and tokens + p.tokens > self.max_tokens:
                    groups.append(cur)
                    cur, tokens = [], 0
            cur.append(p)
            tokens += p.tokens
        if cur:
            groups.append(cur)
        return groups
