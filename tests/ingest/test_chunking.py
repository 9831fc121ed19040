from ingest.chunking import Chunker, normalize
from ingest.embedders import HashEmbedder
from ingest.types import Block, ParsedDoc


def _doc(*blocks):
    return ParsedDoc(blocks=tuple(blocks))


def test_spans_reproduce_text_and_budget_holds(embedder):
    long_para = " ".join(f"Sentence number {i} states a rule about expenses." for i in range(200))
    doc = _doc(Block("title", "Policy", 1), Block("title", "Scope", 2), Block("text", "Short intro."),
               Block("title", "Details", 2), Block("text", long_para), Block("table", "a | b\n1 | 2"))
    chunker = Chunker(embedder, max_tokens=64)
    norm, chunks = chunker.chunk("d1", "v" * 64, doc)
    assert len(chunks) > 5
    for c in chunks:
        assert norm.text[c.start:c.end] == c.text
        assert c.token_count <= 64, c
        assert c.text.strip() == c.text
    # ids are stable and ordered
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert chunks[0].id == "d1#vvvvvvvvvvvv-0000"


def test_never_crosses_top_level_sections():
    doc = _doc(Block("title", "Handbook", 1), Block("title", "Leave", 2), Block("text", "PTO is 20 days."),
               Block("title", "Sick leave", 3), Block("text", "Sick leave is 10 days."),
               Block("title", "Travel", 2), Block("text", "Book economy."))
    _, chunks = Chunker(HashEmbedder(), max_tokens=200).chunk("d", "0" * 64, doc)
    # the lone H1 is the title; H2s are top-level sections; the H3 stays inside its H2's chunk
    assert len(chunks) == 2
    assert chunks[0].text.startswith("Handbook\n\nLeave") and chunks[1].text.startswith("Travel")
    assert "Sick leave is 10 days." in chunks[0].text and "Book economy." not in chunks[0].text
    assert chunks[1].section == ("Handbook", "Travel")


def test_heading_is_never_left_dangling_at_chunk_end():
    body = " ".join(["word"] * 30)
    doc = _doc(Block("title", "A", 1), Block("text", body), Block("title", "A.1", 2), Block("text", body),
               Block("title", "A.2", 2), Block("text", body))
    _, chunks = Chunker(HashEmbedder(), max_tokens=40).chunk("d", "0" * 64, doc)
    for c in chunks:
        assert not c.text.endswith(("A.1", "A.2")), c.text


def test_page_numbers_follow_blocks():
    doc = _doc(Block("title", "T", 1, page=1), Block("text", "one " * 20, page=1), Block("text", "two " * 20, page=2))
    _, chunks = Chunker(HashEmbedder(), max_tokens=100).chunk("d", "0" * 64, doc)
    assert (chunks[0].page_start, chunks[0].page_end) == (1, 2)


def test_normalize_joins_blocks_with_blank_lines():
    norm = normalize(_doc(Block("text", "a"), Block("text", "b")))
    assert norm.text == "a\n\nb" and norm.spans == ((0, 1), (3, 4))


def test_text_before_first_heading_gets_title_as_section():
    doc = _doc(Block("text", "Preamble " * 12), Block("title", "Part", 1), Block("text", "Body " * 12))
    _, chunks = Chunker(HashEmbedder(), max_tokens=16).chunk("d", "0" * 64, doc, title="My Doc")
    assert chunks[0].section == ("My Doc",) and chunks[-1].section == ("Part",)
