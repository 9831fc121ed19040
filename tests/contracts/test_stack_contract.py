"""The evaluation Stack contract (evals/stack.py), run against every implementation: `api.wiring.EvalStack`
built from settings. What the evals rely on: parts over the stack's data dir, `at` moving only the data dir,
an ingestor that reports its events, and a snapshot for run reports that is JSON and holds no secret."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from evals.stack import Stack
from ingest.access import Principal
from tests.support import SAMPLES

SECRET = "sk-contract-never-in-a-report"


def _eval_stack(data_dir: Path) -> Stack:
    from api.settings import Settings
    from api.wiring import EvalStack

    return EvalStack(Settings(data_dir=data_dir, llm={"api_key": SECRET}, ingest={"exclude": ["drafts/"]}))


@pytest.fixture(scope="module", params=["eval-stack"])
def stack(request, tmp_path_factory) -> Stack:
    return _eval_stack(tmp_path_factory.mktemp("stack"))


@pytest.fixture(scope="module")
def ingested(stack, tmp_path_factory) -> tuple[Stack, Path, list[tuple[str, dict]]]:
    """The policies of the sample corpus ingested once through the stack's ingestor, its events recorded."""
    corpus = tmp_path_factory.mktemp("stack-corpus")
    shutil.copytree(SAMPLES / "policies", corpus / "policies")
    (corpus / "drafts").mkdir()
    (corpus / "drafts" / "wip.md").write_text("# Draft\n\nNot for the knowledge base.\n")
    events: list[tuple[str, dict]] = []
    report = stack.ingestor(on_event=lambda kind, data: events.append((kind, data))).ingest(
        [corpus], exclude=stack.exclude)
    assert report.added > 0 and not report.failed and report.excluded == 1
    return stack, corpus, events


def test_data_dir_and_exclude(stack):
    assert isinstance(stack.data_dir, Path) and stack.data_dir.is_dir()
    assert list(stack.exclude) == ["drafts/"] and all(isinstance(p, str) for p in stack.exclude)


def test_at_moves_only_the_data_dir(stack, tmp_path):
    other = stack.at(tmp_path / "cache")
    assert other.data_dir == tmp_path / "cache" and stack.data_dir != other.data_dir
    assert other.snapshot() == stack.snapshot() and list(other.exclude) == list(stack.exclude)


def test_snapshot_is_json_and_holds_no_secret(stack):
    snap = stack.snapshot()
    text = json.dumps(snap)
    assert json.loads(text) == snap and SECRET not in text
    assert {"embedding", "retrieval", "answer", "llm"} <= set(snap)


def test_the_ingestor_writes_where_the_retriever_and_assistant_read(ingested):
    stack, corpus, events = ingested
    assert any(kind == "plan" for kind, _ in events)  # the ingestor reports to the eval's callback
    res = stack.retriever().search("How many PTO hours carry over?", Principal(), top_k=3)
    assert res.hits and all(str(corpus / "policies") in h.doc.uri for h in res.hits)
    answer = stack.assistant().answer("How many PTO hours carry over?", Principal())
    assert answer.status in ("answered", "extractive") and answer.citations


def test_a_stack_at_another_data_dir_sees_nothing_of_this_one(ingested, tmp_path):
    stack = ingested[0]
    res = stack.at(tmp_path / "empty").retriever().search("How many PTO hours carry over?", Principal(), top_k=3)
    assert not res.hits
