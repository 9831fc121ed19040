"""One embedder shared by request threads and an ingest job: concurrent use never fails (red-team M3)."""

from __future__ import annotations

import threading

import numpy as np

QUERIES = ["How many vacation days carry over?", "Who approves travel expenses?", "payments API retries",
           "What happened during the checkout outage?"]
PASSAGES = [("Employees accrue paid time off every month. " * k) + f"Passage {k} about leave." for k in range(1, 9)]


def test_threads_embedding_queries_and_documents_at_once(embedder):
    expected_q = {q: embedder.embed_query(q) for q in QUERIES}
    expected_d = embedder.embed_documents(PASSAGES)
    expected_n = embedder.count_tokens(PASSAGES)
    errors: list[BaseException] = []
    mismatches: list[str] = []
    start = threading.Barrier(8)

    def querying(n: int) -> None:
        start.wait()
        for i in range(12):
            q = QUERIES[(n + i) % len(QUERIES)]
            if not np.array_equal(embedder.embed_query(q), expected_q[q]):
                mismatches.append(q)

    def ingesting(n: int) -> None:
        start.wait()
        for _ in range(3):
            if embedder.count_tokens(PASSAGES) != expected_n:
                mismatches.append("count_tokens")
            embedder.token_offsets(PASSAGES[n % len(PASSAGES)])
            if not np.array_equal(embedder.embed_documents(PASSAGES), expected_d):
                mismatches.append("embed_documents")

    def guarded(fn, n):
        try:
            fn(n)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(fn, n)) for n in range(4) for fn in (querying, ingesting)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, [f"{type(e).__name__}: {e}" for e in errors]
    assert not mismatches, mismatches
