"""The web page as a short conversation: a follow-up is sent with the earlier turns and answered in their context.

Over the sample corpus, "and who approves them?" on its own is not covered (nothing says who approves
"them"); after "How much notice do I need to give for PTO requests?" the offline heuristic searches both
and the answer names the approver.
"""

from __future__ import annotations

import json
import re

from playwright.sync_api import Page, expect

from tests.support.web import ask, page, sign_in  # noqa: F401 (page is a fixture)

FIRST = "How much notice do I need to give for PTO requests?"
FOLLOW = "and who approves them?"
APPROVER = "Your manager approves or declines the request within 3 business days."


def ask_bodies(page: Page) -> list[dict]:
    """The JSON body of every question the page sends, in order, as the browser sent it."""
    bodies: list[dict] = []
    page.on("request", lambda r: r.url.endswith("/v1/ask/stream") and bodies.append(json.loads(r.post_data)))
    return bodies


def test_a_follow_up_carries_the_previous_turn_and_is_answered_in_its_context(page, api_env):
    with api_env.client(api_env.keys["reader"]) as c:
        alone = c.post("/v1/ask", json={"question": FOLLOW}).json()
    assert alone["status"] == "no_evidence", alone["text"]  # so only the history can make it answerable

    bodies = ask_bodies(page)
    sign_in(page, api_env.url, api_env.keys["reader"])
    new = page.get_by_role("button", name="New conversation")
    expect(new).to_be_hidden()
    a1 = ask(page, FIRST)
    assert a1["status"] == "extractive" and a1["citations"]
    assert "history" not in bodies[0]
    expect(page.locator("#conversation")).to_be_hidden()  # the only turn is the answer shown
    expect(new).to_be_visible()

    a2 = ask(page, FOLLOW)
    assert bodies[1]["question"] == FOLLOW
    assert bodies[1]["history"] == [{"role": "user", "content": FIRST}, {"role": "assistant", "content": a1["text"]}]
    assert a2["status"] == "extractive" and APPROVER in a2["text"], a2["text"]
    assert {c["doc_id"] for c in a2["citations"]} == {c["doc_id"] for c in a1["citations"]}
    expect(page.locator("#question-echo")).to_have_text(FOLLOW)
    expect(page.locator("#answer")).to_contain_text(APPROVER)

    earlier = page.get_by_role("region", name="Earlier in this conversation")
    expect(earlier).to_be_visible()
    turns = earlier.get_by_role("listitem")
    expect(turns).to_have_count(1)
    expect(turns.locator(".turn-q")).to_have_text("Q: " + FIRST)
    first_sentence = a1["text"].split(" [")[0]
    expect(turns.locator(".turn-a")).to_contain_text(first_sentence)
    expect(turns.locator(".turn-a")).not_to_contain_text("[1]")  # its markers would point at sources gone
    expect(earlier.locator("a, img, script")).to_have_count(0)  # text only

    new.click()
    expect(earlier).to_be_hidden()
    expect(page.locator("#result")).to_be_hidden()
    expect(new).to_be_hidden()
    expect(page.get_by_label("Ask a question")).to_be_focused()
    expect(page.get_by_label("Ask a question")).to_have_value("")

    a3 = ask(page, FOLLOW)
    assert "history" not in bodies[2] and a3["status"] == "no_evidence"
    expect(page.get_by_role("heading", name="Not found in the knowledge base")).to_be_visible()
    expect(earlier).to_be_hidden()

    # an abstention stays in the conversation: "not covered" is context too
    ask(page, FIRST)
    assert bodies[3]["history"] == [{"role": "user", "content": FOLLOW}, {"role": "assistant", "content": a3["text"]}]
    expect(turns).to_have_count(1)
    expect(turns.first).to_have_class(re.compile("is-notfound"))
    expect(turns.locator(".turn-a")).to_contain_text("Not found: " + a3["text"])


def test_signing_out_forgets_the_conversation(page, api_env):
    bodies = ask_bodies(page)
    sign_in(page, api_env.url, api_env.keys["reader"])
    ask(page, FIRST)
    ask(page, "what is the rate limit on the payments api?")
    expect(page.locator("#turns li")).to_have_count(1)

    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("API key").fill(api_env.keys["reader"])  # in the same page: no reload forgets it for us
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_label("Ask a question")).to_be_visible()
    expect(page.locator("#conversation")).to_be_hidden()
    expect(page.get_by_role("button", name="New conversation")).to_be_hidden()
    a = ask(page, FOLLOW)
    assert "history" in bodies[1] and "history" not in bodies[2]
    assert a["status"] == "no_evidence"


def test_only_the_last_turns_are_sent_and_shown(page, api_env):
    bodies = ask_bodies(page)
    sign_in(page, api_env.url, api_env.keys["reader"])
    questions = [f"what is the rate limit on the payments api? ({i})" for i in range(7)]
    answers = [ask(page, q)["text"] for q in questions]
    last = bodies[-1]["history"]
    assert len(last) == 10  # five question-answer pairs, within /v1/ask's 20 turns
    assert [t["content"] for t in last[::2]] == questions[1:6]  # oldest first; the first question dropped
    assert [t["content"] for t in last[1::2]] == answers[1:6]
    assert [t["role"] for t in last] == ["user", "assistant"] * 5
    expect(page.locator("#turns .turn-q")).to_have_text(["Q: " + q for q in questions[1:6]])
