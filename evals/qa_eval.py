"""Answer quality of the assistant on a question set, through Lore's real ingest, search and answerer (issue 4).

Run it with `lore eval qa --dataset FILE.jsonl [--corpus DIR] [--data-dir DIR] [--out DIR] [--json]`, and
calibrate with `lore eval calibrate --dataset FILE.jsonl [--corpus DIR] [--json]`.

A dataset line is `{"id", "question", "answerable", "gold_docs": [...], "must_contain": [...]}`, optionally
with `"user"` and `"groups"` (who asks; default: an anonymous reader). `gold_docs` are document paths
relative to the corpus root (`policies/pto-policy.md`); a hit's document matches when its path ends with
one. `must_contain` strings match case-insensitively with whitespace collapsed, in the answer text or its
cited quotes. See evals/datasets/README.md.

With `--corpus DIR` the folder is ingested (incrementally) into an eval cache, by default
`./.lore-eval/qa-<folder name>`; without it the configured knowledge base (LORE_DATA_DIR) is asked.

Metrics (answerable questions unless said otherwise):
- gold_hit@5: a gold document is among the first 5 hits the answer considered;
- gold_recall@5 / gold_mrr: share of the gold documents among the first 5 distinct documents of the
  hits, and the mean reciprocal rank of the first one;
- gold_cited: the answer cites a gold document (an abstention cites nothing);
- must_contain: every must_contain string appears in the answer text or its quotes;
- citation_validity (all answers): share of citations that resolve to a stored, current chunk of a
  document the asker may read, whose quote is a substring of the chunk and sits at [start, end) of
  the document text;
- abstention: precision and recall of `no_evidence` as a detector of unanswerable questions, and the
  share of answerable questions that abstained;
- latency_ms: p50 / p95 of `Answer.timings["total_ms"]` after one warm-up question;
- by_doc_type: gold_hit@5, gold_cited and must_contain per doc type of the gold documents.
Every question's outcome is kept in `cases`; `lore eval qa` saves them in a run file with the settings
(evals/report.py) for reports and `lore eval compare`.

Lines exported by `lore eval export-feedback` load once reviewed: a line whose `answerable` is still null
is refused with its line number and what to fill in.

Calibration answers every question once with the abstention threshold off, then sweeps the threshold
over the confidences seen and recommends the one that abstains on the most unanswerable questions while
abstaining on at most 5% of answerable ones (ties: the lower threshold). The issue allows 10% on unseen
questions; 5% leaves a margin because scores on the dev set the answerer was tuned on are optimistic
(docs/benchmarks.md). Calibrate on dev sets only.
"""

from __future__ import annotations

import re
import statistics
import time
from pathlib import Path

from evals.retrieval_eval import _progress, ingest_corpus, json_lines, run_meta
from evals.stack import Stack
from ingest.errors import ConfigError

FIELDS = {"id": str, "question": str, "answerable": bool, "gold_docs": list, "must_contain": list}
MAX_ANSWERABLE_ABSTAIN = 0.05  # the issue allows 10% on unseen questions; dev-tuned scores are optimistic
_WS = re.compile(r"\s+")


# -- dataset -------------------------------------------------------------------------------------
def load_dataset(path: str | Path) -> list[dict]:
    """Validated rows; an error names the file, the line and the field to fix."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: dataset not found; pass --dataset a JSONL file (evals/datasets/README.md)")
    rows, seen = [], set()
    for n, row in json_lines(path, "see evals/datasets/README.md"):
        if "answerable" in row and row["answerable"] is None:
            raise ConfigError(f"{path}:{n}: case {row.get('id')!r} is not reviewed yet: set \"answerable\" to "
                              "true or false and, when true, list the documents that answer it in \"gold_docs\" "
                              "(paths relative to the corpus) and its key facts in \"must_contain\"; or delete "
                              "the line (evals/datasets/README.md)")
        for key, typ in FIELDS.items():
            if not isinstance(row.get(key), typ):
                raise ConfigError(f"{path}:{n}: field {key!r} must be a {typ.__name__} "
                                  f"(got {type(row.get(key)).__name__}); see evals/datasets/README.md")
        if not row["question"].strip():
            raise ConfigError(f"{path}:{n}: field 'question' is empty")
        if row["id"] in seen:
            raise ConfigError(f"{path}:{n}: id {row['id']!r} is used twice; ids must be unique")
        if row["answerable"] and not row["gold_docs"]:
            raise ConfigError(f"{path}:{n}: an answerable question needs at least one entry in 'gold_docs'")
        if not all(isinstance(x, str) and x for x in row["gold_docs"] + row["must_contain"]):
            raise ConfigError(f"{path}:{n}: 'gold_docs' and 'must_contain' hold non-empty strings only")
        seen.add(row["id"])
        rows.append(row)
    if not rows:
        raise ConfigError(f"{path}: the dataset has no questions")
    return rows


def _norm(text: str) -> str:
    return _WS.sub(" ", text).strip().lower()


def is_gold(uri: str, gold_docs: list[str]) -> bool:
    p = "/" + Path(uri).as_posix().lstrip("/")
    return any(p.endswith("/" + g.strip("/")) for g in gold_docs)


def contains_all(answer: dict, must: list[str], quotes: int | None = None) -> bool:
    """Every fact in the answer text or its quotes (the first `quotes` of them, when given)."""
    cites = answer["citations"] if quotes is None else answer["citations"][:quotes]
    hay = _norm(" \n ".join([answer["text"], *(c["quote"] for c in cites)]))
    return all(_norm(m) in hay for m in must)


_MARKER = re.compile(r"\[\d+\]")


def answer_words(text: str) -> int:
    """Words a reader reads: the answer text without its [n] citation markers."""
    return len(_MARKER.sub(" ", text).split())


def citation_ok(c: dict, store, readable: set[str]) -> bool:
    """The citation points at a stored, current chunk the asker was shown, and its quote is verbatim."""
    chunk = store.get_chunks([c["chunk_id"]]).get(c["chunk_id"])
    doc = store.get_document(c["doc_id"])
    if chunk is None or doc is None or chunk.doc_id != doc.id or doc.version != c["version"]:
        return False
    text = store.document_text(doc.id)
    return (c["chunk_id"] in readable and c["quote"] in chunk.text
            and text[c["start"]:c["end"]] == c["quote"])


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return round(s[min(len(s) - 1, int(round(q * (len(s) - 1))))], 2)


# -- run -----------------------------------------------------------------------------------------
def stack_for(corpus: str | Path | None, data_dir: str | Path | None, stack: Stack) -> Stack:
    """The stack over the data dir an eval asks: `data_dir`, else the corpus's eval cache
    (./.lore-eval/qa-<folder name>), else the configured knowledge base."""
    if corpus is None:
        return stack if data_dir is None else stack.at(Path(data_dir))
    corpus = Path(corpus)
    if not corpus.is_dir():
        raise ConfigError(f"{corpus}: corpus folder not found; pass --corpus the folder the dataset's gold_docs "
                          "are relative to")
    return stack.at(Path(data_dir) if data_dir is not None else Path.cwd() / ".lore-eval" / f"qa-{corpus.resolve().name}")


def answer_all(rows: list[dict], assistant, progress: bool = True, label: str = "questions") -> list[dict]:
    from ingest.access import Principal

    assistant.answer("warm-up: what does the knowledge base cover?", Principal())
    out = []
    with _progress(progress) as bar:
        task = bar.add_task(label, total=len(rows))
        for row in rows:
            who = Principal(row.get("user"), tuple(row.get("groups") or ()))
            ans = assistant.answer(row["question"], who)
            out.append({"row": row, "answer": ans.to_dict(row["id"]), "confidence": ans.confidence})
            bar.advance(task)
    return out


def gold_ranks(hits: list[dict], gold_docs: list[str]) -> list[int | None]:
    """For each gold document, its 1-based rank among the distinct documents of the hits (None: absent)."""
    docs: list[str] = []
    for h in hits:
        if h["uri"] not in docs:
            docs.append(h["uri"])
    return [next((i for i, u in enumerate(docs, 1) if is_gold(u, [g])), None) for g in gold_docs]


def gold_doc_types(store, rows: list[dict]) -> dict[str, str]:
    """gold_docs entry -> doc type of the stored document it names (folder rules when it is not stored)."""
    from ingest.pipeline import doc_type_for

    docs = [(d.uri, d.doc_type) for d in store.documents()]
    out = {}
    for g in {g for r in rows for g in r["gold_docs"]}:
        out[g] = next((t for uri, t in docs if is_gold(uri, [g])), None) or doc_type_for(Path(g), {}, None)
    return out


def _case(row: dict, a: dict, confidence: float, ok: list[bool], types: dict[str, str]) -> dict:
    abstained = a["status"] == "no_evidence"
    t = a["timings"]
    case = {"id": row["id"], "question": row["question"], "answerable": row["answerable"],
            "status": a["status"], "confidence": round(confidence, 4), "abstained": abstained,
            "citations_valid": all(ok), "n_citations": len(ok), "n_valid": sum(ok), "total_ms": t["total_ms"],
            "retrieve_ms": t.get("retrieve_ms"), "answer_ms": t.get("answer_ms"), "text": a["text"],
            "words": None if abstained else answer_words(a["text"]),
            "cited": [c["uri"] for c in a["citations"]], "top5": [h["uri"] for h in a["hits"][:5]],
            "gold_docs": row["gold_docs"], "facts": row["must_contain"],
            "doc_types": sorted({types[g] for g in row["gold_docs"]})}
    if row["answerable"]:
        ranks = gold_ranks(a["hits"], row["gold_docs"])
        hay = _norm(" \n ".join([a["text"], *(c["quote"] for c in a["citations"])]))
        case["gold_ranks"] = ranks
        case["gold_hit@5"] = any(is_gold(h["uri"], row["gold_docs"]) for h in a["hits"][:5])
        case["gold_recall@5"] = round(sum(r is not None and r <= 5 for r in ranks) / len(ranks), 4)
        case["gold_rr"] = round(1 / min((r for r in ranks if r), default=float("inf")), 4)
        case["gold_cited"] = any(is_gold(c["uri"], row["gold_docs"]) for c in a["citations"])
        case["missing"] = [] if abstained else [m for m in row["must_contain"] if _norm(m) not in hay]
        case["must_contain"] = (not abstained) and contains_all(a, row["must_contain"])
        case["facts_lead"] = (not abstained) and contains_all(a, row["must_contain"], quotes=2)
        case["n_gold_cites"] = sum(is_gold(c["uri"], row["gold_docs"]) for c in a["citations"])
    return case


def share(xs: list[dict], key: str) -> float:
    return round(sum(bool(x[key]) for x in xs) / len(xs), 4) if xs else 0.0


def _mean(xs: list[dict], key: str) -> float:
    return round(sum(x[key] for x in xs) / len(xs), 4) if xs else 0.0


def by_doc_type(cases: list[dict]) -> dict[str, dict]:
    """Answerable questions grouped by the doc type of their gold documents (a mixed one counts in each)."""
    out: dict[str, dict] = {}
    for t in sorted({t for c in cases if c["answerable"] for t in c["doc_types"]}):
        xs = [c for c in cases if c["answerable"] and t in c["doc_types"]]
        out[t] = {"questions": len(xs), **{k: share(xs, k) for k in ("gold_hit@5", "gold_cited", "must_contain")}}
    return out


def score(results: list[dict], store) -> dict:
    types = gold_doc_types(store, [r["row"] for r in results])
    cases, n_cit, n_ok = [], 0, 0
    for r in results:
        a = r["answer"]
        readable = {h["chunk_id"] for h in a["hits"]}
        ok = [citation_ok(c, store, readable) for c in a["citations"]]
        n_cit += len(ok)
        n_ok += sum(ok)
        cases.append(_case(r["row"], a, r["confidence"], ok, types))
    answerable = [c for c in cases if c["answerable"]]
    unanswerable = [c for c in cases if not c["answerable"]]
    abstained = [c for c in cases if c["abstained"]]
    lat = [c["total_ms"] for c in cases]
    words = [c["words"] for c in cases if c["words"] is not None]
    a_cites = sum(c["n_citations"] for c in answerable)
    return {
        "questions": len(cases), "answerable": len(answerable), "unanswerable": len(unanswerable),
        "gold_hit@5": share(answerable, "gold_hit@5"), "gold_recall@5": _mean(answerable, "gold_recall@5"),
        "gold_mrr": _mean(answerable, "gold_rr"), "gold_cited": share(answerable, "gold_cited"),
        "must_contain": share(answerable, "must_contain"), "facts_lead": share(answerable, "facts_lead"),
        "cite_precision": round(sum(c["n_gold_cites"] for c in answerable) / a_cites, 4) if a_cites else 1.0,
        "answer_words_p50": statistics.median(words) if words else 0, "answer_words_p90": pct(words, 0.9),
        "citation_validity": round(n_ok / n_cit, 4) if n_cit else 1.0, "citations": n_cit,
        "abstention": {
            "precision": round(sum(not c["answerable"] for c in abstained) / len(abstained), 4) if abstained else 1.0,
            "recall": share(unanswerable, "abstained"),
            "answerable_abstained": share(answerable, "abstained"),
        },
        "latency_ms": {"p50": pct(lat, 0.5), "p95": pct(lat, 0.95), "max": round(max(lat), 2) if lat else 0.0},
        "by_doc_type": by_doc_type(cases),
        "cases": cases,
    }


def run_qa(dataset: str | Path, stack: Stack, corpus: str | Path | None = None, data_dir: str | Path | None = None,
           progress: bool = True) -> dict:
    """Answer every question of the dataset with the stack's assistant and score the answers."""
    rows = load_dataset(dataset)
    stack = stack_for(corpus, data_dir, stack)
    ingest = ingest_for(stack, corpus, progress)
    assistant = stack.assistant()
    t0 = time.perf_counter()
    results = answer_all(rows, assistant, progress)
    out = score(results, assistant.retriever.store)
    out.update({"dataset": str(dataset), "corpus": str(corpus) if corpus else None, "data_dir": str(stack.data_dir),
                "ingest": ingest, "run_s": round(time.perf_counter() - t0, 1), "models": assistant.models,
                "threshold": assistant.config.threshold, "top_k": assistant.top_k})
    out.update(run_meta("qa", stack))
    return out


def ingest_for(stack: Stack, corpus: str | Path | None, progress: bool) -> dict | None:
    """Ingest the corpus (incrementally) into the stack's data dir; every file must ingest."""
    if corpus is None:
        return None
    rep = ingest_corpus(stack, Path(corpus), progress)
    if rep["failed"]:
        first = rep["failed"][0]
        raise ConfigError(f"{len(rep['failed'])} corpus files failed to ingest (e.g. {first['path']}: {first['error']}); "
                          "fix them before evaluating")
    return {k: v for k, v in rep.items() if k != "failed"}


def sweep(results: list[dict], max_answerable_abstain: float = MAX_ANSWERABLE_ABSTAIN) -> dict:
    """Every candidate threshold with its abstention rates, and the recommended one."""
    conf_a = [r["confidence"] for r in results if r["row"]["answerable"]]
    conf_u = [r["confidence"] for r in results if not r["row"]["answerable"]]
    if not conf_a or not conf_u:
        raise ConfigError("calibration needs both answerable and unanswerable questions in the dataset")
    cands = sorted({0.0, *(round(c + 1e-4, 4) for c in conf_a + conf_u)})
    table = []
    for t in cands:
        a_abs = sum(c < t for c in conf_a) / len(conf_a)
        u_abs = sum(c < t for c in conf_u) / len(conf_u)
        table.append({"threshold": t, "answerable_abstained": round(a_abs, 4), "unanswerable_abstained": round(u_abs, 4)})
    ok = [r for r in table if r["answerable_abstained"] <= max_answerable_abstain]
    best = max(ok, key=lambda r: (r["unanswerable_abstained"], -r["threshold"]))
    return {"recommended": best["threshold"], "at_recommended": best, "table": table,
            "confidence": {"answerable": sorted(round(c, 4) for c in conf_a),
                           "unanswerable": sorted(round(c, 4) for c in conf_u)}}


def calibrate(datasets, stack: Stack, corpora=None, data_dir: str | Path | None = None, progress: bool = True,
              max_answerable_abstain: float = MAX_ANSWERABLE_ABSTAIN) -> dict:
    """Sweep the abstention threshold over one or more dev sets, each with its corpus (paired in order).

    Several sets calibrate one threshold for knowledge bases of different kinds (the bundled sample and
    the shared enterprise corpus); `data_dir` applies only to a single set.
    """
    datasets = [datasets] if isinstance(datasets, (str, Path)) else list(datasets)
    corpora = [corpora] if isinstance(corpora, (str, Path)) else list(corpora or [])
    if corpora and len(corpora) != len(datasets):
        raise ConfigError(f"give one --corpus per --dataset ({len(datasets)} datasets, {len(corpora)} corpora), "
                          "in the same order")
    if len(datasets) > 1 and data_dir is not None:
        raise ConfigError("--data-dir works with a single --dataset; with several, each corpus gets its own eval cache")
    results, current = [], None
    for i, ds in enumerate(datasets):
        rows = load_dataset(ds)
        corpus = corpora[i] if corpora else None
        at = stack_for(corpus, data_dir, stack)
        ingest_for(at, corpus, progress)
        assistant = at.assistant()
        current = assistant.config.threshold
        blind = assistant.reconfigured(threshold=float("-inf"))  # never abstains: shows every confidence
        results += answer_all(rows, blind, progress, label=f"calibrating {Path(ds).name}")
    out = sweep(results, max_answerable_abstain)
    out.update({"datasets": [str(d) for d in datasets], "questions": len(results), "current": current,
                "max_answerable_abstain": max_answerable_abstain})
    return out
