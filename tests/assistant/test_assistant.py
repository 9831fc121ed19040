"""The offline answerer: verified citations, exact figures, honest abstention, permissions."""

import pytest

from assistant.service import Assistant, resolve_follow_up
from assistant.types import Citation, QuoteNotInPassage
from retriever.search import Retriever
from ingest.access import Principal
from tests.support.answers import _check_citations  # noqa: F401


@pytest.fixture()
def assistant(make_ingestor, corpus, embedder):
    ing = make_ingestor()
    ing.ingest([corpus])
    return Assistant(Retriever(ing.store, ing.vectors, embedder), embedder)


ANSWERABLE = [
    ("How many PTO hours can I carry over?", "40 hours", "pto-policy"),
    ("what's the rate limit on the payments api", "600 requests per minute", "payments-api"),
    ("how many times are failed webhooks retried", "5", "payments-api"),
    ("can contractors take PTO?", "not eligible", "pto-policy"),
]


@pytest.mark.parametrize("question,fact,doc", ANSWERABLE)
def test_answers_with_exact_figures_and_verified_citations(assistant, question, fact, doc):
    ans = assistant.answer(question, Principal())
    assert ans.status == "extractive", ans
    assert fact in ans.text and any(fact in c.quote for c in ans.citations)
    assert ans.citations[0].doc_id.startswith(doc)
    assert len(ans.text.split()) <= 130 and ans.trace_id and ans.timings_ms["total_ms"] > 0
    _check_citations(ans, assistant.retriever.store)


@pytest.mark.parametrize("question", ["Who won the 2022 football World Cup?", "What is the capital of Australia?",
                                      "recipe for banana bread"])
def test_unanswerable_questions_abstain_and_show_closest_sources(assistant, question):
    ans = assistant.answer(question, Principal())
    assert ans.status == "no_evidence" and ans.citations == ()
    assert "does not cover" in ans.text and ans.hits  # closest sources are listed, nothing cited


def test_reconfigured_sibling_changes_only_itself(assistant):
    """Calibration answers with a never-abstaining sibling; the assistant it came from still abstains."""
    q = "recipe for banana bread"
    blind = assistant.reconfigured(threshold=float("-inf"))
    assert blind.retriever is assistant.retriever and blind.config.threshold == float("-inf")
    assert blind.answer(q, Principal()).status != "no_evidence"
    assert assistant.answer(q, Principal()).status == "no_evidence"
    assert assistant.config.threshold > float("-inf")


def test_forbidden_passage_is_never_cited_or_quoted(assistant):
    q = "what is the salary band for a senior engineer in Lisbon"
    hr = assistant.answer(q, Principal("ana", ("hr",)))
    assert "EUR 68,000" in hr.text and hr.citations[0].doc_id.startswith("compensation-bands")
    anon = assistant.answer(q, Principal("bob", ("support",)))
    assert "68,000" not in anon.text
    assert not any(c.doc_id.startswith("compensation-bands") for c in anon.citations)
    assert not any(h.doc.id.startswith("compensation-bands") for h in anon.hits)


def test_follow_up_is_resolved_against_the_previous_question(assistant):
    history = [{"role": "user", "content": "Who is eligible for PTO?"},
               {"role": "assistant", "content": "Full-time employees accrue PTO. [1]"}]
    assert resolve_follow_up("and for contractors?", history) == "Who is eligible for PTO? and for contractors?"
    assert resolve_follow_up("What is the payments API rate limit per key?", history).startswith("What is")
    ans = assistant.answer("and for contractors?", Principal(), history=history)
    assert "not eligible" in ans.text


def test_a_quote_must_be_in_its_passage(assistant):
    hit = assistant.retriever.search("PTO carry over", Principal(), top_k=1).hits[0]
    with pytest.raises(QuoteNotInPassage):
        Citation.from_hit(1, hit, "Employees may carry over up to 400 hours")


# -- sentence selection details (docs/benchmarks.md: tuned on evals/datasets/enterprise_dev.jsonl) ----

CACHING = """---
title: Cache Freshness Guide
---
# Cache Freshness Guide

## Heuristic freshness

When a response carries no explicit expiry, caches may compute a heuristic expiration from the
Last-Modified time. Such caches use no more than some fraction of the interval since that time. A typical
setting of this fraction might be 10%.

## Incident response

Report a suspected breach to the security desk within 1 hour of noticing it. Do not turn off the affected
laptop, because memory evidence would be lost. Keep a written timeline of what you observed.
"""


@pytest.fixture()
def caching(make_ingestor, tmp_path, embedder):
    root = tmp_path / "kb"
    root.mkdir()
    (root / "cache.md").write_text(CACHING)
    ing = make_ingestor()
    ing.ingest([root])
    return Assistant(Retriever(ing.store, ing.vectors, embedder), embedder)


def test_quote_takes_the_next_sentence_when_it_holds_the_asked_figure(caching):
    ans = caching.answer("what fraction of the interval since Last-Modified do caches use for heuristic freshness?",
                         Principal())
    assert ans.status == "extractive" and "10%" in ans.text
    assert any("some fraction" in c.quote and "10%" in c.quote for c in ans.citations)  # one quote, two sentences
    _check_citations(ans, caching.retriever.store)


def test_both_parts_of_a_two_part_question_are_answered(caching):
    ans = caching.answer("how fast must I report a suspected breach, and should I turn off my laptop?", Principal())
    assert "within 1 hour" in ans.text and "Do not turn off" in ans.text
    _check_citations(ans, caching.retriever.store)


def test_quantity_questions_and_figures_are_recognized():
    from assistant.extractive import asks_quantity, has_figure

    assert all(asks_quantity(q) for q in ("how long do logs live?", "what version broke it", "max upload size?"))
    assert not any(asks_quantity(q) for q in ("why did okta login break?", "who approves expenses"))
    assert has_figure("within 1 hour") and has_figure("twice daily") and not has_figure("report it promptly")
