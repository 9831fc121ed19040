"""`lore eval qa`, `lore eval calibrate` and `lore eval retrieval` on small datasets, in process (issues 3, 4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app
from tests.support import SAMPLES
from tests.support.eval_files import BEIR_DOCS, _write  # noqa: F401

QA = [
    {"id": "q1", "question": "how many PTO hours carry over into next year?", "answerable": True,
     "gold_docs": ["policies/pto-policy.md"], "must_contain": ["40 hours"]},
    {"id": "q2", "question": "what's the payments api rate limit", "answerable": True,
     "gold_docs": ["specs/payments-api.md"], "must_contain": ["600 requests per minute"]},
    {"id": "q3", "question": "who won the 2022 football world cup?", "answerable": False, "gold_docs": [],
     "must_contain": []},
    {"id": "q4", "question": "recipe for banana bread", "answerable": False, "gold_docs": [], "must_contain": []},
]
runner = CliRunner()


def _last_json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def kb(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("eval-kb")


def test_eval_qa_scores_a_question_set(tmp_path, kb):
    ds = _write(tmp_path / "qa.jsonl", QA)
    res = _last_json(runner.invoke(app, ["eval", "qa", "--dataset", str(ds), "--corpus", str(SAMPLES),
                                         "--data-dir", str(kb), "--out", str(tmp_path / "run.json"), "--json"]))
    assert res["questions"] == 4 and res["answerable"] == 2 and res["unanswerable"] == 2
    assert res["gold_hit@5"] == 1.0 and res["gold_cited"] == 1.0 and res["must_contain"] == 1.0
    assert res["citation_validity"] == 1.0 and res["citations"] >= 2
    assert res["abstention"] == {"precision": 1.0, "recall": 1.0, "answerable_abstained": 0.0}
    assert 0 < res["latency_ms"]["p50"] <= res["latency_ms"]["p95"]
    cases = json.loads((tmp_path / "run.json").read_text())["cases"]
    assert [c["id"] for c in cases] == ["q1", "q2", "q3", "q4"] and cases[2]["status"] == "no_evidence"


def test_eval_qa_counts_a_missing_fact_and_a_wrong_gold_doc(tmp_path, kb, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the run's report goes to ./.lore-eval/runs/
    wrong = [dict(QA[0], must_contain=["40 hours", "no such phrase anywhere"], gold_docs=["specs/payments-api.md"])]
    res = _last_json(runner.invoke(app, ["eval", "qa", "--dataset", str(_write(tmp_path / "w.jsonl", wrong)),
                                         "--corpus", str(SAMPLES), "--data-dir", str(kb), "--json"]))
    assert res["must_contain"] == 0.0 and res["gold_cited"] == 0.0 and res["gold_hit@5"] in (0.0, 1.0)


def test_calibrate_recommends_a_threshold_between_the_two_kinds(tmp_path, kb):
    ds = _write(tmp_path / "qa.jsonl", QA)
    res = _last_json(runner.invoke(app, ["eval", "calibrate", "--dataset", str(ds), "--corpus", str(SAMPLES),
                                         "--data-dir", str(kb), "--json"]))
    conf = res["confidence"]
    assert max(conf["unanswerable"]) < res["recommended"] <= min(conf["answerable"]) + 1e-3
    assert res["at_recommended"] == {"threshold": res["recommended"], "answerable_abstained": 0.0,
                                     "unanswerable_abstained": 1.0}


@pytest.mark.parametrize("line,field", [
    ('{"id": "x", "question": "q?", "answerable": "yes", "gold_docs": [], "must_contain": []}', "answerable"),
    ('{"id": "x", "question": "q?", "answerable": true, "gold_docs": [], "must_contain": []}', "gold_docs"),
    ('{"id": "x", "answerable": false, "gold_docs": [], "must_contain": []}', "question"),
    ("not json", "not a JSON line"),
])
def test_bad_dataset_lines_are_named_with_file_line_and_field(tmp_path, line, field):
    ds = tmp_path / "bad.jsonl"
    ds.write_text(json.dumps(QA[0]) + "\n" + line + "\n")
    r = runner.invoke(app, ["eval", "qa", "--dataset", str(ds), "--corpus", str(SAMPLES), "--json"])
    assert r.exit_code == 2
    assert f"{ds}:2" in r.output and field in r.output


def test_eval_retrieval_on_a_tiny_beir_dataset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    beir = tmp_path / "tiny"
    (beir / "qrels").mkdir(parents=True)
    _write(beir / "corpus.jsonl", [{"_id": k, "title": t, "text": x} for k, (t, x) in BEIR_DOCS.items()])
    _write(beir / "queries.jsonl", [{"_id": "q1", "text": "does vitamin D help bones?"},
                                    {"_id": "q2", "text": "aspirin heart attack prevention"}])
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")
    res = _last_json(runner.invoke(app, ["eval", "retrieval", "--beir", str(beir), "--data-dir",
                                         str(tmp_path / "cache"), "--json"]))
    assert res["queries"] == 2 and res["docs"] == 4
    for mode in ("hybrid", "dense", "keyword"):
        assert set(res[mode]) == {"ndcg@10", "recall@10", "recall@100", "mrr@10"}
        assert res[mode]["recall@10"] == 1.0 and res[mode]["mrr@10"] == 1.0
    r = runner.invoke(app, ["eval", "retrieval", "--beir", str(beir), "--split", "train", "--json"])
    assert r.exit_code == 2 and "train.tsv" in r.output
    one = _last_json(runner.invoke(app, ["eval", "retrieval", "--beir", str(beir), "--data-dir", str(tmp_path / "cache"),
                                         "--mode", "hybrid", "--top-k", "1", "--json"]))
    assert "dense" not in one and one["hybrid"]["mrr@10"] == 1.0 and one["settings"]["top_k"] == 1
    r = runner.invoke(app, ["eval", "retrieval", "--beir", str(beir), "--data-dir", str(tmp_path / "cache"),
                            "--mode", "fuzzy"])
    assert r.exit_code == 2 and "fuzzy" in r.output


def test_calibrate_pairs_datasets_with_corpora(tmp_path):
    ds = _write(tmp_path / "qa.jsonl", QA)
    r = runner.invoke(app, ["eval", "calibrate", "--dataset", str(ds), "--dataset", str(ds), "--corpus", str(SAMPLES)])
    assert r.exit_code == 2 and "one --corpus per --dataset" in r.output


def test_answer_threshold_setting_reaches_the_answerer(monkeypatch, tmp_path):
    from api.settings import Settings
    from api.wiring import build_assistant

    monkeypatch.setenv("LORE_ANSWER__THRESHOLD", "0.25")
    assert build_assistant(Settings(data_dir=tmp_path)).config.threshold == 0.25
    monkeypatch.setenv("LORE_ANSWER__THRESHOLD", "high")
    r = runner.invoke(app, ["ask", "anything?", "--data-dir", str(tmp_path)])
    assert r.exit_code == 2 and "LORE_ANSWER__THRESHOLD" in r.output.replace("answer.threshold", "LORE_ANSWER__THRESHOLD")


def test_a_list_setting_that_is_not_json_is_named_not_a_traceback(monkeypatch, tmp_path):
    monkeypatch.setenv("LORE_INGEST__EXCLUDE", "SOURCES.md")
    r = runner.invoke(app, ["ingest", str(SAMPLES), "--data-dir", str(tmp_path)])
    assert r.exit_code == 2 and "LORE_INGEST__" in r.output and "JSON" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "lore.db").exists()
