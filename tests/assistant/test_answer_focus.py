"""Answers a support agent can trust (issue 15): short and on-topic, clean, never self-contradicting, honest
when the knowledge base does not hold what was asked, and as good for a follow-up as for the question
asked alone. Real corpus (../shared/corpora/enterprise as `lore ingest` stores it), real embedder, the
packaged reader weights; the bundled sample for the cases the issue found there.
"""

from __future__ import annotations

import re

import pytest

from assistant.extractive import contradicts, display, split_units
from assistant.service import focus_question
from ingest.access import Principal

from tests.support import REPO

DEBRIS = re.compile(r"\[\^|\[!|!!!|<[a-zA-Z/][^>]*>|&[a-z]+;|\*\*|\]\(|\{\{|\{%|<!--|```|^\s*//", re.M)
# A table without a header row keeps "a | b" cells (ingest/markup.py): that is content, not debris.
MARKER = re.compile(r"\s*\[\d+\]")


def _assistant(data_dir):
    from api.settings import Settings
    from api.wiring import build_assistant

    return build_assistant(Settings(data_dir=data_dir))


@pytest.fixture(scope="module")
def enterprise(enterprise_kb):
    d, r = enterprise_kb
    assert r.returncode == 0, r.stderr[-3000:]
    return _assistant(d)


@pytest.fixture(scope="module")
def acme(tmp_path_factory, onnx_cache):
    from api.settings import Settings
    from api.wiring import EvalStack
    from evals.retrieval_eval import ingest_corpus

    d = tmp_path_factory.mktemp("focus-acme")
    rep = ingest_corpus(EvalStack(Settings(data_dir=d)), REPO / "samples" / "acme", progress=False)
    assert not rep["failed"], rep["failed"]
    return _assistant(d)


def sentences(answer) -> list[str]:
    return [s for s in MARKER.split(answer.text) if s.strip()]


# -- directly answered questions answer, near-miss questions abstain ------------------------------
def test_a_directly_answered_question_is_answered_in_one_sentence(acme):
    a = acme.answer("can I expense a glass of wine with dinner?", Principal())
    assert a.status == "extractive", a.text
    assert "Alcohol is not reimbursed." in a.text and len(sentences(a)) == 1, a.text


def test_a_table_row_is_answered_with_its_header(acme):
    a = acme.answer("what is the hotel cap in London?", Principal())
    assert a.status == "extractive", a.text
    assert "City: London, Nightly cap: GBP 240" in a.text and "$320" not in a.text, a.text


@pytest.mark.xfail(strict=True, reason="issue 15, open: the reader ranks a neighbouring sentence first; "
                   "remove this marker when the case passes")
def test_lost_equipment_is_answered_from_its_section(enterprise):
    a = enterprise.answer("I lost my GSA laptop, what do I do?", Principal())
    assert a.status == "extractive", a.text
    assert any("Lost or stolen" in " ".join(c.section) for c in a.citations[:1]), a.citations


def test_a_default_the_spec_never_gives_is_not_answered(enterprise):
    a = enterprise.answer("how many retries by default if I don't set backoffLimit?", Principal())
    assert a.status == "no_evidence", a.text
    assert a.hits and not a.citations and "does not cover" in a.text


@pytest.mark.parametrize("question", [
    "what is the per diem for Tokyo at Sourcegraph?",
    "how many vacation days do Sourcegraph interns get in their first week in Singapore?",
])
def test_near_miss_questions_abstain(enterprise, question):
    a = enterprise.answer(question, Principal())
    assert a.status == "no_evidence", a.text


# -- focus ---------------------------------------------------------------------------------------
@pytest.mark.xfail(strict=True, reason="issue 15, open: the reader ranks a neighbouring sentence first; "
                   "remove this marker when the case passes")
def test_a_one_fact_question_gets_the_fact_first_and_nothing_off_topic(enterprise):
    a = enterprise.answer("minimum PTO at sourcegraph", Principal())
    assert a.status == "extractive" and "30 days" in sentences(a)[0], a.text
    assert len(MARKER.sub("", a.text).split()) <= 60, a.text
    assert all("parental" not in c.uri for c in a.citations), [c.uri for c in a.citations]


def test_the_answer_never_contradicts_itself(enterprise):
    a = enterprise.answer("HPA that never scales down", Principal())
    parts = sentences(a)
    assert not any(contradicts(x, y) for i, x in enumerate(parts) for y in parts[i + 1:]), a.text
    assert not ("never scale down" in a.text and "Scale down will be done" in a.text), a.text


def test_contradiction_check():
    assert contradicts("The cluster will scale up as usual (default values), but will never scale down.",
                       "Scale down will be done a usual way (check stabilization window in Algorithm details)")
    assert contradicts("The meal allowance is $75 per day.", "The meal allowance is $90 per day.")
    assert not contradicts("The meal allowance is $75 per day.", "Alcohol is not reimbursed.")
    assert not contradicts("Submit reports within 30 days.", "Reports submitted within 30 days are paid.")


# -- clean text ----------------------------------------------------------------------------------
def test_display_joins_list_items_and_rows_without_bullets():
    assert display("Fringe benefits (per month):\n- Internet: $50\n- Phone: $30") == \
        "Fringe benefits (per month): Internet: $50; Phone: $30"
    text = "Intro.\n\n```\ncode // comment\n```\n\n- item one"
    kinds = [(u.kind, u.text) for u in split_units(text)]
    assert ("code", "```\ncode // comment\n```") in kinds and ("item", "item one") in kinds


# -- follow-ups ----------------------------------------------------------------------------------
@pytest.mark.xfail(strict=True, reason="issue 15, open: the reader ranks a neighbouring sentence first; "
                   "remove this marker when the case passes")
def test_a_follow_up_finds_what_the_question_asked_alone_finds(enterprise):
    alone = enterprise.answer("do I need to have worked at Sourcegraph a while to qualify for parental leave?",
                              Principal())
    first = enterprise.answer("is parental leave paid at sourcegraph?", Principal())
    history = [{"role": "user", "content": first.question}, {"role": "assistant", "content": first.text}]
    follow = enterprise.answer("and do I need to have worked there a while to qualify?", Principal(), history=history)
    assert "day 1" in alone.text or "no minimum tenure" in alone.text, alone.text
    assert "day 1" in follow.text or "no minimum tenure" in follow.text, follow.text


def test_focus_question_keeps_the_follow_up_first():
    h = [{"role": "user", "content": "is parental leave paid at sourcegraph?"}]
    assert focus_question("and do I need to have worked there a while?", h).startswith("and do I need")
    assert "sourcegraph" in focus_question("and do I need to have worked there a while?", h)
    assert focus_question("what is the hotel cap in Lisbon for a two week trip?", h) == \
        "what is the hotel cap in Lisbon for a two week trip?"


# -- the dev questions over the whole corpus ------------------------------------------------------
@pytest.fixture(scope="module")
def dev_answers(enterprise):
    from evals.qa_eval import load_dataset

    rows = load_dataset(REPO / "evals" / "datasets" / "enterprise_dev.jsonl")
    return [(r, enterprise.answer(r["question"], Principal())) for r in rows]


def test_no_markup_debris_in_any_answer(dev_answers):
    dirty = [(r["id"], a.text) for r, a in dev_answers if DEBRIS.search(MARKER.sub("", a.text))]
    assert not dirty, dirty[:5]


def test_no_answer_contradicts_itself(dev_answers):
    bad = [(r["id"], a.text) for r, a in dev_answers
           if any(contradicts(x, y) for i, x in enumerate(sentences(a)) for y in sentences(a)[i + 1:])]
    assert not bad, bad[:3]


def test_further_quotes_come_from_the_answers_document_and_add_no_text(dev_answers):
    """Context a one-sentence answer leaves out (the exception, the next step) is quoted as a further
    source from the same document: never answer text, never another document, never a repeated span."""
    extra = 0
    for r, a in dev_answers:
        used = {int(m) for m in re.findall(r"\[(\d+)\]", a.text)}
        spans: dict[str, list[tuple[int, int]]] = {}
        for c in a.citations:
            if c.marker not in used:
                extra += 1
                assert c.doc_id == a.citations[0].doc_id, (r["id"], c.uri, a.citations[0].uri)
            assert not any(lo < c.end and c.start < hi for lo, hi in spans.get(c.chunk_id, [])), (r["id"], c.quote)
            spans.setdefault(c.chunk_id, []).append((c.start, c.end))
    assert extra >= 40, extra  # measured 157 over the 77 answered dev questions


def test_a_fact_next_to_the_answer_is_in_a_further_quote(enterprise):
    q = "how long does it take to get a decision on a reasonable accommodation request?"
    a = enterprise.answer(q, Principal())
    assert a.status == "extractive", a.text
    assert "three calendar days" in " ".join(c.quote for c in a.citations), [c.quote for c in a.citations]


# -- the packaged reader ----------------------------------------------------------------------------
def test_packaged_reader_weights_load_and_name_their_training_data():
    from assistant.reader import ANSWERABLE, FEATURES, load

    r = load()
    assert r.sentence.features == FEATURES and r.answerable.features == ANSWERABLE
    assert "enterprise_test3" in r.meta["held_out_never_read"] and "enterprise_test3" not in r.meta["trained_on"]
    assert r.meta["leave_one_set_out"], "retrain with `lore eval train-reader`: its figures go in the weights"


def test_weights_from_another_version_are_refused_with_the_fix(tmp_path):
    import json

    from assistant.reader import WEIGHTS, load
    from ingest.errors import ConfigError

    data = json.loads(WEIGHTS.read_text())
    data["sentence"]["features"] = data["sentence"]["features"][:-1]
    bad = tmp_path / "reader.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="lore eval train-reader"):
        load(bad)


def test_a_follow_up_answers_as_the_question_asked_alone_does(enterprise):
    """Issue 15 item 4: the follow-up picks the same answer as its standalone form (whatever that is)."""
    pairs = [("is parental leave paid at sourcegraph?", "and how many weeks is it?",
              "how many weeks of paid parental leave does sourcegraph give?"),
             ("how many hours of annual leave can I carry over at TTS?", "and what about sick leave?",
              "how many hours of sick leave can I carry over at TTS?")]
    for first_q, follow_q, alone_q in pairs:
        first = enterprise.answer(first_q, Principal())
        history = [{"role": "user", "content": first.question}, {"role": "assistant", "content": first.text}]
        follow = enterprise.answer(follow_q, Principal(), history=history)
        alone = enterprise.answer(alone_q, Principal())
        assert follow.status == alone.status == "extractive", (follow.text, alone.text)
        assert {(c.doc_id, c.start) for c in follow.citations[:1]} == {(c.doc_id, c.start) for c in alone.citations[:1]}, \
            (follow.text, alone.text)
