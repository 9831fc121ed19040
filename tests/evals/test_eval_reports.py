"""Eval reports, `lore eval compare` and `lore eval export-feedback` (issue 7), on small real runs."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from api.cli import app
from tests.support import SAMPLES
from tests.support.eval_files import BEIR_DOCS, _write
from evals.compare import compare, load_run
from evals.qa_eval import load_dataset
from ingest.errors import ConfigError

runner = CliRunner()
QA = [
    {"id": "q1", "question": "how many PTO hours carry over into next year?", "answerable": True,
     "gold_docs": ["policies/pto-policy.md"], "must_contain": ["40 hours"]},
    {"id": "q2", "question": "what's the payments api rate limit", "answerable": True,
     "gold_docs": ["specs/payments-api.md"], "must_contain": ["600 requests per minute"]},
    {"id": "q3", "question": "what caused the checkout outage on march 14 2025?", "answerable": True,
     "gold_docs": ["incidents/2025-03-14-checkout-outage.md"], "must_contain": ["TLS certificate"]},
    {"id": "q4", "question": "who won the 2022 football world cup?", "answerable": False, "gold_docs": [],
     "must_contain": []},
    {"id": "q5", "question": "recipe for banana bread", "answerable": False, "gold_docs": [], "must_contain": []},
]


def _last_json(result, code: int = 0) -> dict:
    assert result.exit_code == code, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.refs += [(tag, k, v or "") for k, v in attrs if k in ("src", "href", "srcset", "data", "action")]


def _check_self_contained(html_file: Path, plot_files: list[str]) -> None:
    """Every image is an inlined PNG identical to its file; nothing points outside the page."""
    page = html_file.read_text(encoding="utf-8")
    p = _Refs()
    p.feed(page)
    assert not {"script", "link", "iframe", "object"} & set(p.tags)
    assert "@import" not in page and "url(" not in page
    srcs = [v for tag, k, v in p.refs if tag == "img"]
    assert all(v.startswith("data:image/png;base64,") for v in srcs), srcs[:1]
    assert all(v.startswith(("data:", "#")) for _, _, v in p.refs)
    inlined = sorted(base64.b64decode(v.split(",", 1)[1]) for v in srcs)
    assert inlined == sorted(Path(f).read_bytes() for f in plot_files) and len(srcs) == len(plot_files)


def _check_pngs(files: list[str], expect: set[str]) -> None:
    assert {Path(f).stem.rsplit("-", 1)[-1] if "-" in Path(f).stem else Path(f).stem for f in files} == expect
    for f in files:
        assert Path(f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(f) as im:
            im.verify()
        with Image.open(f) as im:
            assert im.width >= 300 and im.height >= 200


@pytest.fixture(scope="module")
def kb(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("report-kb")


@pytest.fixture(scope="module")
def qa_run(tmp_path_factory, kb) -> tuple[dict, Path]:
    d = tmp_path_factory.mktemp("qa-run")
    ds = _write(d / "qa.jsonl", QA)
    res = _last_json(runner.invoke(app, ["eval", "qa", "--dataset", str(ds), "--corpus", str(SAMPLES),
                                         "--data-dir", str(kb), "--out", str(d / "base"), "--name", "base",
                                         "--json"]))
    return res, ds


def test_qa_report_has_every_plot_inlined_and_the_metrics_table(qa_run):
    res, _ = qa_run
    rep = res["report"]
    assert "cases" not in res and res["kind"] == "qa" and res["name"] == "base"
    assert rep["run"].endswith("base/run.json") and Path(rep["md"]).name == "report.md"
    _check_pngs(rep["plots"], {"latency", "abstention", "doc_types", "gold_recall"})
    _check_self_contained(Path(rep["html"]), rep["plots"])
    text = Path(rep["md"]).read_text()
    assert "| metric | value | over |" in text
    assert f"| must_contain | {res['must_contain']:.3f} | 3 answerable |" in text
    assert "| citation validity | 1.000 |" in text and "## By document type" in text
    run = json.loads(Path(rep["run"]).read_text())
    assert [c["id"] for c in run["cases"]] == ["q1", "q2", "q3", "q4", "q5"]
    c1 = run["cases"][0]
    assert c1["doc_types"] == ["policy"] and c1["gold_ranks"][0] == 1 and c1["facts"] == ["40 hours"]
    assert set(run["by_doc_type"]) == {"policy", "spec", "incident"}
    assert run["snapshot"]["answer"] == {"threshold": 0.47, "top_k": 8} and run["created_at"]


def test_retrieval_report_next_to_a_json_run_file(tmp_path):
    beir = tmp_path / "tiny"
    (beir / "qrels").mkdir(parents=True)
    _write(beir / "corpus.jsonl", [{"_id": k, "title": t, "text": x} for k, (t, x) in BEIR_DOCS.items()])
    _write(beir / "queries.jsonl", [{"_id": "q1", "text": "does vitamin D help bones?"},
                                    {"_id": "q2", "text": "aspirin heart attack prevention"}])
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")
    out = tmp_path / "runs" / "tiny.json"
    res = _last_json(runner.invoke(app, ["eval", "retrieval", "--beir", str(beir), "--data-dir", str(tmp_path / "c"),
                                         "--out", str(out), "--json"]))
    rep = res["report"]
    assert rep["run"] == str(out) and rep["md"] == str(out.with_suffix(".md")) and "per_query" not in res
    _check_pngs(rep["plots"], {"recall_at_k", "latency", "per_query"})
    assert all(Path(p).name.startswith("tiny-") for p in rep["plots"])
    _check_self_contained(Path(rep["html"]), rep["plots"])
    text = Path(rep["md"]).read_text()
    assert "| mode | ndcg@10 | recall@10 | recall@100 | mrr@10 | ms/query |" in text and "| hybrid | 1.0000 |" in text
    run = json.loads(out.read_text())
    row = run["per_query"][0]
    assert row["relevant"] == 1 and row["modes"]["hybrid"]["ranks"] == [1] and row["modes"]["dense"]["ms"] > 0
    from evals.report import recall_curve

    assert recall_curve(run["per_query"], "keyword", 3) == [1.0, 1.0, 1.0]


def test_a_question_string_cannot_inject_markup(tmp_path):
    from evals.report import md, to_html

    evil = '<script src="https://evil.example/x.js"></script> | *bold* [a](https://evil.example)'
    page = to_html(f"| q |\n|---|\n| {md(evil)} |\n", {}, "t")
    p = _Refs()
    p.feed(page)
    assert "script" not in p.tags and "a" not in p.tags and "&lt;script" in page


def _qa_case(i: int, answerable: bool, **kw) -> dict:
    c = {"id": f"c{i:03d}", "question": f"question {i}?", "answerable": answerable, "status": "extractive",
         "confidence": 0.7, "abstained": False, "citations_valid": True, "n_citations": 1, "n_valid": 1,
         "total_ms": 50.0, "text": "x", "cited": [], "top5": [], "gold_docs": [], "facts": [], "doc_types": []}
    if answerable:
        c.update({"gold_hit@5": True, "gold_recall@5": 1.0, "gold_rr": 1.0, "gold_cited": True, "must_contain": True,
                  "gold_ranks": [1], "missing": []})
    c.update(kw)
    return c


def _synthetic(rng, n: int, p_a: float, p_b: float) -> tuple[dict, dict]:
    """Two paired qa runs over n answerable questions: must_contain passes with p_a in A and p_b in B."""
    u = rng.random(n)
    a = [_qa_case(i, True, must_contain=bool(u[i] < p_a), total_ms=float(40 + rng.random() * 20)) for i in range(n)]
    b = [_qa_case(i, True, must_contain=bool(u[i] < p_b), total_ms=float(60 + rng.random() * 20)) for i in range(n)]
    base = {"kind": "qa", "dataset": "synthetic.jsonl", "models": {}}
    return ({**base, "name": "A", "cases": a, "snapshot": {"answer": {"threshold": 0.47}}},
            {**base, "name": "B", "cases": b, "snapshot": {"answer": {"threshold": 0.40}}})


def test_compare_gives_exact_deltas_and_intervals_that_cover_the_truth():
    rng = np.random.default_rng(7)
    a, b = _synthetic(rng, 400, 0.5, 0.8)
    res = compare(a, b, resamples=2000, seed=1)
    m = {r["metric"]: r for r in res["metrics"]}
    observed = np.mean([c["must_contain"] for c in b["cases"]]) - np.mean([c["must_contain"] for c in a["cases"]])
    mc = m["must_contain"]
    assert mc["delta"] == round(observed, 4) and mc["over"] == 400
    assert mc["ci95"][0] < 0.3 < mc["ci95"][1] and mc["ci95"][0] > 0 and mc["significant"] and mc["better"]
    assert m["gold_cited"]["delta"] == 0 and m["gold_cited"]["ci95"] == [0, 0] and m["gold_cited"]["better"] is None
    assert m["latency_p50_ms"]["delta"] > 15 and m["latency_p50_ms"]["better"] is False
    flips = [f for f in res["flips"] if f["change"] == "must_contain"]
    expect = [c["id"] for c, d in zip(a["cases"], b["cases"]) if c["must_contain"] != d["must_contain"]]
    assert [f["id"] for f in flips] == expect and all(f["from"] == "fail" and f["to"] == "pass" for f in flips)
    assert res["settings_changed"] == {"settings.answer.threshold": [0.47, 0.40]}
    assert res["improved"] == ["must_contain"] and "latency_p50_ms" in res["worsened"]
    assert compare(a, b, resamples=2000, seed=1) == res  # seeded: the same intervals every time


def test_compare_intervals_cover_the_true_difference_about_95_percent_of_the_time():
    rng = np.random.default_rng(11)
    covered = 0
    for _ in range(40):
        a, b = _synthetic(rng, 150, 0.6, 0.7)
        lo, hi = next(r for r in compare(a, b, resamples=500, seed=2)["metrics"] if r["metric"] == "must_contain")["ci95"]
        covered += lo <= 0.1 <= hi
    assert covered >= 34, covered


def test_a_one_question_difference_is_not_significant():
    rng = np.random.default_rng(3)
    a, _ = _synthetic(rng, 100, 0.7, 0.7)
    b = json.loads(json.dumps(a))
    first_pass = next(c for c in b["cases"] if c["must_contain"])
    first_pass["must_contain"] = False
    r = next(m for m in compare(a, b)["metrics"] if m["metric"] == "must_contain")
    assert r["delta"] == -0.01 and r["ci95"][0] < 0 <= r["ci95"][1] and not r["significant"] and r["better"] is None


def test_compare_refuses_runs_it_cannot_pair(tmp_path):
    rng = np.random.default_rng(5)
    a, b = _synthetic(rng, 20, 0.5, 0.5)
    with pytest.raises(ConfigError, match="same kind"):
        compare(a, {**b, "kind": "retrieval"})
    with pytest.raises(ConfigError, match="share no question ids"):
        compare(a, {**b, "cases": [dict(c, id="x" + c["id"]) for c in b["cases"]]})
    with pytest.raises(ConfigError, match="run folder"):
        load_run(tmp_path)
    r = runner.invoke(app, ["eval", "compare", str(tmp_path / "nope"), str(tmp_path)])
    assert r.exit_code == 2 and "no run file" in r.output


def test_compare_two_real_runs_names_the_flipped_questions(qa_run, kb, tmp_path, monkeypatch):
    base, ds = qa_run
    monkeypatch.setenv("LORE_ANSWER__THRESHOLD", "1.5")  # nothing clears it: every answer abstains
    worse = _last_json(runner.invoke(app, ["eval", "qa", "--dataset", str(ds), "--corpus", str(SAMPLES),
                                           "--data-dir", str(kb), "--out", str(tmp_path / "strict"), "--json"]))
    assert worse["abstention"]["answerable_abstained"] == 1.0
    r = runner.invoke(app, ["eval", "compare", base["report"]["run"], str(tmp_path / "strict"),
                            "--out", str(tmp_path / "cmp"), "--fail-on-worse", "--json"])
    res = _last_json(r, code=1)
    flips = {(f["id"], f["change"]): (f["from"], f["to"], f["better"]) for f in res["flips"]}
    assert flips[("q1", "abstention")] == ("answered", "abstained", False)
    assert flips[("q1", "must_contain")] == ("pass", "fail", False)
    assert flips[("q2", "gold_cited")] == ("cited", "not cited", False)
    assert not any(f["id"] in ("q4", "q5") and not f["better"] for f in res["flips"])
    assert res["settings_changed"]["settings.answer.threshold"] == [0.47, 1.5]
    m = {x["metric"]: x for x in res["metrics"]}
    assert m["answerable_abstained"]["delta"] == 1.0 and m["must_contain"]["b"] == 0.0
    assert set(res["report"]) == {"json", "md", "html", "plots"}
    _check_self_contained(Path(res["report"]["html"]), res["report"]["plots"])
    text = Path(res["report"]["md"]).read_text()
    assert "| q1 | must\\_contain | pass | fail | worse |" in text and "answer.threshold" in text
    human = runner.invoke(app, ["eval", "compare", base["report"]["run"], str(tmp_path / "strict"),
                                "--out", str(tmp_path / "cmp2")])
    assert human.exit_code == 0 and "q1 must_contain: pass -> fail (worse)" in human.stdout


def test_settings_snapshot_holds_no_secret():
    from api.settings import Settings
    from api.wiring import settings_snapshot

    s = Settings(llm={"base_url": "https://bob:hunter2@llm.example.com:8443/v1", "model": "m",
                      "api_key": "sk-very-secret"}, slack={"bot_token": "xoxb-secret", "signing_secret": "shh"})
    text = json.dumps(settings_snapshot(s))
    assert "sk-very-secret" not in text and "hunter2" not in text and "xoxb" not in text and "shh" not in text
    assert settings_snapshot(s)["llm"]["base_url"] == "https://llm.example.com:8443/v1"


# -- feedback export -----------------------------------------------------------------------------
def test_thumbs_down_and_abstentions_become_reviewable_eval_cases(tmp_path):
    from api.settings import Settings
    from tests.support.live import LiveServer, ingest

    data = tmp_path / "kb"
    settings = Settings(data_dir=data)
    ingest(settings, [SAMPLES])
    with LiveServer(settings) as srv:
        key = srv.services.keys.create("sam", "", "reader")[0]
        with srv.client(key) as c:
            def ask(q: str, channel: str = "api") -> dict:
                r = c.post("/v1/ask", json={"question": q}, headers={"X-Lore-Channel": channel})
                assert r.status_code == 200, r.text
                return r.json()

            pto = ask("how many PTO hours carry over into next year?")
            pay = ask("what's the payments api rate limit", "web")
            cup = ask("who won the 2022 football world cup?")
            ask("Who won the 2022 football   world cup?")  # the same question again: exported once
            assert pto["status"] == "extractive" and cup["status"] == "no_evidence"
            for trace, rating in ((pto["trace_id"], "down"), (pay["trace_id"], "up")):
                r = c.post("/v1/feedback", json={"trace_id": trace, "rating": rating, "comment": "wrong number"})
                assert r.status_code == 200, r.text
        out = tmp_path / "cases.jsonl"
        today = datetime.now(timezone.utc).date().isoformat()
        res = _last_json(runner.invoke(app, ["eval", "export-feedback", "--since", today, "--data-dir", str(data),
                                             "--out", str(out), "--json"]))
    assert res["found"] == 2 and res["added"] == 2 and res["thumbs_down"] == 1 and res["no_evidence"] == 1
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    down, abst = lines
    assert down["id"] == f"fb-{pto['trace_id']}" and down["trace_id"] == pto["trace_id"]
    assert down["question"] == pto["question"] and down["answer_given"] == pto["text"]
    assert down["answerable"] is None and down["gold_docs"] == [] and down["must_contain"] == []
    assert down["feedback"] == {"rating": "down", "comment": "wrong number"} and down["channel"] == "api"
    assert down["status"] == "extractive" and down["review"].startswith("TODO") and down["asked_at"].startswith(today)
    assert [s["quote"] for s in down["sources"]] == [x["quote"] for x in pto["citations"]]
    assert all(s["uri"].endswith("pto-policy.md") for s in down["sources"][:1]) and "closest_sources" not in down
    assert abst["status"] == "no_evidence" and abst["times_asked"] == 2 and abst["feedback"] is None
    assert abst["sources"] == [] and abst["closest_sources"] and abst["closest_sources"][0]["title"]
    assert abst["user"] == "sam"

    with pytest.raises(ConfigError, match=rf"{out}:1: case 'fb-{pto['trace_id']}' is not reviewed yet.*answerable.*gold_docs.*must_contain"):
        load_dataset(out)
    r = runner.invoke(app, ["eval", "qa", "--dataset", str(out), "--data-dir", str(data), "--json"])
    assert r.exit_code == 2 and f"{out}:1" in r.output and "not reviewed" in r.output

    down.update(answerable=True, gold_docs=["policies/pto-policy.md"], must_contain=["40 hours"])
    abst.update(answerable=False)
    _write(out, [down, abst])
    assert [r["id"] for r in load_dataset(out)] == [down["id"], abst["id"]]
    again = _last_json(runner.invoke(app, ["eval", "export-feedback", "--since", today, "--data-dir", str(data),
                                           "--out", str(out), "--json"]))
    assert again["added"] == 0 and again["kept"] == 2 and again["unreviewed"] == 0
    assert [json.loads(x) for x in out.read_text().splitlines()] == [down, abst]  # the review survives
    res = _last_json(runner.invoke(app, ["eval", "qa", "--dataset", str(out), "--data-dir", str(data),
                                         "--out", str(tmp_path / "fb-run"), "--json"]))
    assert res["questions"] == 2 and res["gold_cited"] == 1.0 and res["abstention"]["recall"] == 1.0

    r = runner.invoke(app, ["eval", "export-feedback", "--since", today, "--until", "2020-01-01",
                            "--data-dir", str(data), "--out", str(out)])
    assert r.exit_code == 2 and "--until" in r.output
    r = runner.invoke(app, ["eval", "export-feedback", "--since", "yesterday", "--data-dir", str(data)])
    assert r.exit_code == 2 and "YYYY-MM-DD" in r.output
    r = runner.invoke(app, ["eval", "export-feedback", "--since", today, "--data-dir", str(tmp_path / "empty")])
    assert r.exit_code == 2 and "no audit log" in r.output


def test_answer_focus_metrics_count_what_a_reader_sees():
    from evals.qa_eval import answer_words, contains_all

    ans = {"text": "Alcohol is not reimbursed. [1] Hotels are capped. [2]",
           "citations": [{"quote": "Alcohol is not reimbursed."}, {"quote": "Hotels are capped."},
                         {"quote": "The nightly cap is $250."}]}
    assert answer_words(ans["text"]) == 7  # markers are not words
    assert contains_all(ans, ["$250"]) and not contains_all(ans, ["$250"], quotes=2)
    assert contains_all(ans, ["alcohol IS  not"], quotes=2)
