"""The TokenCounter contract (ingest/chunking.py), run against every implementation: the ONNX default, the
sentence-transformers (torch) backend and the hash embedder. What the chunker relies on: a count per text
equal to the number of token spans, spans in order inside the text that cut it only at token boundaries,
and counts that do not depend on the batch."""

from __future__ import annotations

import pytest

from ingest.chunking import Chunker, TokenCounter
from ingest.types import Block, ParsedDoc

TEXTS = ["Unused PTO carries over up to 40 hours.", "The payments API allows 100 requests per minute per key.",
         "", "   \n\t ", "Überstunden werden im Folgemonat ausgeglichen. 残業は翌月に精算します。",
         "café naïve ﬁnance — “quoted” 🚀 end", "word " * 600]


@pytest.fixture()
def counter(emb) -> TokenCounter:
    """Every embedder is the chunker's token counter (tests/contracts/conftest.py)."""
    return emb


def test_one_count_per_text_and_none_for_no_text(counter):
    counts = counter.count_tokens(TEXTS)
    assert len(counts) == len(TEXTS) and all(isinstance(n, int) and n >= 0 for n in counts)
    assert counts[2] == 0 and counts[3] == 0 and counts[0] > 0
    assert counter.count_tokens([]) == []
    assert counter.token_offsets("") == []


def test_counts_do_not_depend_on_the_batch(counter):
    batch = counter.count_tokens(TEXTS)
    assert [counter.count_tokens([t])[0] for t in TEXTS] == batch


def test_offsets_are_ordered_spans_inside_the_text_one_per_token(counter):
    for text, n in zip(TEXTS, counter.count_tokens(TEXTS)):
        spans = counter.token_offsets(text)
        assert len(spans) == n, text[:40]
        assert all(isinstance(s, int) and isinstance(e, int) and 0 <= s <= e <= len(text) for s, e in spans)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), text[:40]  # in order, never overlapping
        assert all(text[s:e].strip() for s, e in spans if e > s)  # a token is never only whitespace


def test_tokens_cover_every_character_but_whitespace(counter):
    """The chunker cuts between tokens: a character in no token would fall between two chunks."""
    for text in TEXTS:
        covered = set()
        for s, e in counter.token_offsets(text):
            covered.update(range(s, e))
        assert [c for i, c in enumerate(text) if not c.isspace() and i not in covered] == [], text[:40]


def test_the_chunker_splits_a_long_block_within_the_budget(counter):
    """The chunker cuts an oversized block at token offsets: each cut counts within the budget."""
    text = " ".join(f"Sentence {i} says the PTO policy allows carry over." for i in range(80))
    doc = ParsedDoc((Block("text", text),), title="t")
    norm, chunks = Chunker(counter, max_tokens=48).chunk("doc", "v", doc)
    assert len(chunks) > 1
    spans = [norm.text[c.start:c.end] for c in chunks]
    assert all(0 < counter.count_tokens([s])[0] <= 48 for s in spans)
    assert " ".join(spans).split() == text.split()  # nothing lost or repeated between the cuts
