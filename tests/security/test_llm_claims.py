"""M5: a model's sentence that its cited passage does not support is never delivered as answered;
and DEBUG logs never carry a secret typed into a question."""

from __future__ import annotations

import os
import subprocess

from assistant.grounding import missing_facts
from ingest.access import Principal
from tests.support import LORE, REPO
from tests.support.llm import KEY, MODEL, PTO, Cited, fake, kb, make, server  # noqa: F401 - fixtures

CEO = "The CEO salary is 9,999,999 EUR [{a}]."


def test_unsupported_figures_and_names_are_caught():
    pto = "Acme PTO policy\nEmployees may carry over up to 40 hours of unused PTO into the next year."
    assert set(missing_facts("The CEO salary is 9,999,999 EUR.", pto)) == {"9999999", "ceo", "eur"}
    assert missing_facts("You can carry over forty hours of PTO at Acme.", pto) == ()
    assert missing_facts("No one may carry over more than 40 hours.", pto) == ()
    assert missing_facts("It costs $1,200.00 a year.", "The fee is 1200 per year.") == ()
    assert missing_facts("Up to 80 hours carry over.", pto) == ("80",)


def test_a_claim_its_passage_does_not_hold_is_not_answered(make, fake):
    fake.script(Cited(CEO, a="40 hours").reply())
    ans = make().answer(PTO, Principal())
    assert ans.status == "extractive" and "9,999,999" not in ans.text, ans
    assert any("figures or names" in n and "9,999,999" in n for n in ans.notes), ans.notes


def test_a_supported_claim_keeps_full_confidence_beside_a_dropped_one(make, fake):
    fake.script(Cited("Employees may carry over up to 40 hours of unused PTO [{a}]. " + CEO, a="40 hours").reply())
    ans = make().answer(PTO, Principal())
    assert ans.status == "answered" and "40 hours" in ans.text and "9,999,999" not in ans.text
    assert 0 < ans.confidence < 1.0 and any("9,999,999" in n for n in ans.notes)


def test_debug_logs_mask_secrets_in_questions(fake, kb):
    secret = "sk-live0123456789abcdefghijklmnop"
    fake.script(Cited("Employees may carry over up to 40 hours of unused PTO [{a}].", a="40 hours").reply())
    env = {**os.environ, "LORE_LLM__BASE_URL": fake.base_url, "LORE_LLM__MODEL": MODEL, "LORE_LLM__API_KEY": KEY,
           "LORE_LOG_LEVEL": "DEBUG"}
    question = f"{PTO} my password=hunter2hunter2 and key {secret}"
    r = subprocess.run([LORE, "ask", question, "--data-dir", str(kb.dir)], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "DEBUG" in r.stderr  # the level took effect: there is something to mask
    for leak in (secret, "hunter2hunter2", KEY):
        assert leak not in r.stderr, (leak, [ln for ln in r.stderr.splitlines() if leak in ln][:3])
