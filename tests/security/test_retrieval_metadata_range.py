"""Low: metadata filter values no document can hold (integers beyond 64 bits, NaN, infinities) are input
errors naming the field - 400 from the API, exit 2 from the CLI - never a storage overflow (500)."""

from __future__ import annotations

import pytest

from ingest.errors import InvalidInput
from retriever.search import Retriever
from ingest.access import Filters, Principal

BAD = [2**63, 2**64, -2**63 - 1, 10**40, float("nan"), float("inf"), float("-inf")]


@pytest.mark.parametrize("value", BAD, ids=str)
def test_unstorable_values_are_refused_naming_the_field(value):
    with pytest.raises(InvalidInput, match="metadata filter 'tier'"):
        Filters(metadata={"tier": value})


def test_the_64_bit_bounds_are_searchable_in_every_mode(tmp_path, corpus, make_ingestor):
    ing = make_ingestor()
    ing.ingest([corpus])
    r = Retriever(ing.store, ing.vectors, ing.embedder)
    for v in (-2**63, 2**63 - 1, 1.5e308, -0.0):
        for mode in ("hybrid", "dense", "keyword"):
            assert r.search("PTO carry over", Principal(), Filters(metadata={"tier": v}), mode=mode).hits == ()


def test_api_answers_400_and_cli_exits_2(api_env, tmp_path):
    from typer.testing import CliRunner

    from api.cli import app

    with api_env.client(api_env.keys["reader"]) as c:
        for raw in ('18446744073709551616', '-9223372036854775809', 'NaN', 'Infinity', '1e999'):
            body = '{"query": "pto", "filters": {"metadata": {"tier": %s}}}' % raw
            r = c.post("/v1/search", content=body, headers={"content-type": "application/json"})
            assert r.status_code == 400 and "metadata filter 'tier'" in r.json()["error"]["message"], (raw, r.text)
        ok = c.post("/v1/search", json={"query": "pto", "filters": {"metadata": {"tier": 2**63 - 1}}})
        assert ok.status_code == 200 and ok.json()["hits"] == []
    for raw in ("18446744073709551616", "NaN", "1e999"):
        res = CliRunner().invoke(app, ["search", "pto", "--meta", f"tier={raw}", "--data-dir", str(tmp_path)])
        assert res.exit_code == 2 and "metadata filter 'tier'" in res.output, res.output
