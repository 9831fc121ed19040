"""The admin console (/admin's Documents, Upload, Jobs and API keys tabs) in headless Debian chromium against a
live service: one test per action, and a reader key that must see none of it.

`LORE_SCREENSHOTS=1 .venv/bin/python -m pytest -q -p no:cacheprovider tests/api/test_web_admin_console.py` also
writes docs/screenshots/admin-documents.png, admin-upload.png, admin-jobs.png and admin-keys.png.
"""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.support.web import SHOTS, WEB, new_page

CORPUS = {
    "policies/pto.md": "---\ntitle: Paid Time Off Policy\ndoc_type: policy\nacl: public\nowners: [group:people-ops]\n---\n# Paid Time Off Policy\n\n"
                       "## Carry-over\n\nUp to 40 hours of unused PTO carry over.\n\n## Requests\n\nAsk two weeks ahead.\n",
    "policies/travel.md": "---\ntitle: Travel Policy\ndoc_type: policy\nacl: public\nowner: group:people-ops\n---\n# Travel Policy\n\n"
                          "Book trains through the quillfeather portal.\n",
    "specs/payments.md": "---\ntitle: Payments API\ndoc_type: spec\nacl: group:eng\n---\n# Payments API\n\n"
                         "## Rate limits\n\nEach key may send 100 requests per minute.\n",
    "hr/salary.md": "---\ntitle: Salary Bands\ndoc_type: policy\nacl: group:hr\n---\n# Salary Bands\n\n"
                    "The senior band in Lisbon is EUR 81,000 to 97,000.\n",
    "incidents/outage.md": "---\ntitle: March Outage\ndoc_type: incident\nacl: group:eng\n---\n# March Outage\n\n"
                           "The payments database failed over at 09:14.\n",
}


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    """A knowledge base of its own (uploads and deletions change it), the hash embedder (the console, not search
    quality, is under test), an ingest root with one folder, an admin key and a reader key."""
    from api.settings import Settings
    from tests.support.live import LiveServer, ingest

    base = tmp_path_factory.mktemp("console")
    for rel, text in CORPUS.items():
        (base / "corpus" / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / "corpus" / rel).write_text(text)
    (base / "root" / "handbook").mkdir(parents=True)
    for name in ("laptops", "parking"):
        (base / "root" / "handbook" / f"{name}.md").write_text(f"# {name.title()}\n\nThe {name} rules live here.\n")
    settings = Settings(data_dir=base / "kb", embedding={"backend": "hash"}, ingest={"parse_workers": 0},
                        server={"ingest_roots": [str(base / "root")]})
    assert ingest(settings, [base / "corpus"])["added"] == len(CORPUS)
    with LiveServer(settings) as s:
        keys = s.services.keys
        s.keys = {"admin": keys.create("root", "", "admin", "console tests")[0],
                  "sam": keys.create("sam", "", "reader")[0]}
        s.admin = s.client(s.keys["admin"])
        s.base = base
        yield s
        s.admin.close()


def signed_in(browser, srv, tab: str = "", key: str = "admin", **kw) -> tuple[Page, list[str]]:
    page, problems = new_page(browser, **kw)
    page.goto(srv.url + "/admin" + (f"#{tab}" if tab else ""))
    page.get_by_label("API key").fill(srv.keys[key])
    page.get_by_role("button", name="Sign in").click()
    return page, problems


def api_docs(srv, **params) -> list[dict]:
    r = srv.admin.get("/v1/documents", params=params)
    assert r.status_code == 200, r.text
    return r.json()["documents"]


def last_action(srv, action: str) -> dict:
    return srv.admin.get("/v1/audit/actions", params={"action": action, "limit": 1}).json()["actions"][0]


def shot(page: Page, name: str, **kw) -> None:
    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / name), full_page=True, **kw)


def doc_rows(page: Page):
    return page.locator("#docs-table tbody tr")


def test_documents_search_filter_and_open(browser, srv):
    page, problems = signed_in(browser, srv)
    expect(page.get_by_role("tab", name="Analytics")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("heading", name="Knowledge base health")).to_be_visible()
    expect(page.get_by_role("tab", name="Sources")).to_be_visible()  # GET /v1/sources answers: the tab shows
    page.get_by_role("tab", name="Analytics").press("ArrowRight")  # the tabs work from the keyboard
    expect(page.get_by_role("tab", name="Documents")).to_be_focused()
    expect(page.get_by_role("tab", name="Documents")).to_have_attribute("aria-selected", "true")
    assert page.url.endswith("/admin#documents")
    everything = api_docs(srv)
    docs = page.locator("#panel-documents")
    expect(doc_rows(page)).to_have_count(len(everything))
    expect(doc_rows(page).locator(".doc-title")).to_have_text([d["title"] for d in everything])
    expect(page.locator("#docs-status")).to_have_text(f"{len(everything)} of {len(everything)} documents")
    salary = next(d for d in everything if d["title"] == "Salary Bands")
    expect(page.locator(f"tr[data-doc-id='{salary['id']}'] td.acl")).to_have_text("group:hr")
    assert salary["owners"] == []  # owners from front matter (owners: or owner:), none for this one
    expect(page.locator("#docs-owner-col")).to_be_visible()
    docs.get_by_label("Owner").select_option("group:people-ops")  # by owner, in the page
    expect(doc_rows(page).locator(".doc-title")).to_have_text(["Paid Time Off Policy", "Travel Policy"])
    expect(doc_rows(page).first.locator("td.owners")).to_have_text("group:people-ops")
    docs.get_by_label("Owner").select_option("")
    expect(doc_rows(page)).to_have_count(len(everything))

    docs.get_by_label("Title contains").fill("policy")  # search by title, through the API's q
    with page.expect_response(lambda r: "/v1/documents?" in r.url and "q=policy" in r.url):
        docs.get_by_role("button", name="Search").click()
    expect(doc_rows(page).locator(".doc-title")).to_have_text([d["title"] for d in api_docs(srv, q="policy")])
    docs.get_by_label("Title contains").fill("")
    with page.expect_response(lambda r: "doc_type=spec" in r.url):
        page.locator("#docs-type").select_option("spec")  # by type, through the API's doc_type
    expect(doc_rows(page).locator(".doc-title")).to_have_text(["Payments API"])
    page.locator("#docs-type").select_option("")
    expect(doc_rows(page)).to_have_count(len(everything))
    docs.get_by_label("Readers (ACL)").select_option("group:eng")  # by ACL token, in the page
    expect(doc_rows(page).locator(".doc-title")).to_have_text(
        [d["title"] for d in everything if "group:eng" in d["acl"]])
    expect(page.locator("#docs-status")).to_have_text(f"2 of {len(everything)} documents")
    docs.get_by_label("Readers (ACL)").select_option("public")
    expect(doc_rows(page).locator(".doc-title")).to_have_text(["Paid Time Off Policy", "Travel Policy"])

    page.get_by_role("button", name="Open Paid Time Off Policy").click()  # open: its passages, linked
    detail = page.locator("#doc-detail")
    expect(detail.get_by_role("heading", name="Paid Time Off Policy")).to_be_focused()
    pto = srv.admin.get(f"/v1/documents/{everything[[d['title'] for d in everything].index('Paid Time Off Policy')]['id']}").json()
    links = detail.locator("#doc-passages a")
    expect(links).to_have_count(len(pto["chunks"]))
    expect(links.first).to_have_attribute("href", "/?" + str(httpx.QueryParams({"passage": pto["chunks"][0]["chunk_id"]})))
    shot(page, "admin-documents.png")
    links.last.click()  # the existing passage view on the Ask page
    expect(page.locator("#passage")).to_contain_text("Ask two weeks ahead")
    page.context.close()
    assert not problems


def test_delete_a_document_after_confirming(browser, srv):
    travel = next(d for d in api_docs(srv) if d["title"] == "Travel Policy")
    page, problems = signed_in(browser, srv, "documents")
    row = page.locator(f"tr[data-doc-id='{travel['id']}']")
    expect(row).to_be_visible()
    row.get_by_role("button", name="Delete Travel Policy").click()
    dialog = page.get_by_role("dialog", name="Delete “Travel Policy”?")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()  # the safe choice is the default
    page.keyboard.press("Escape")  # no: nothing happens
    expect(dialog).to_be_hidden()
    assert srv.admin.get(f"/v1/documents/{travel['id']}").status_code == 200
    row.get_by_role("button", name="Delete Travel Policy").click()
    with page.expect_response(lambda r: r.request.method == "DELETE") as resp:
        dialog.get_by_role("button", name="Delete document").click()
    assert resp.value.status == 200
    expect(row).to_have_count(0)
    expect(page.locator("#docs-status")).to_contain_text("Deleted “Travel Policy”.")
    assert srv.admin.get(f"/v1/documents/{travel['id']}").status_code == 404
    audit = last_action(srv, "document.delete")
    assert (audit["target"], audit["outcome"], audit["user"]) == (travel["id"], "succeeded", "root")
    page.context.close()
    assert not problems


def test_upload_a_good_file_and_a_bad_one(browser, srv, tmp_path):
    good, bad = tmp_path / "remote-work.md", tmp_path / "scan.pdf"
    good.write_text("# Remote Work\n\nRemote work is allowed three days a week with a manager's approval.\n")
    bad.write_text("this is plain text, not a PDF")
    page, problems = signed_in(browser, srv, "upload")
    up = page.locator("#panel-upload")
    expect(up.get_by_role("heading", name="Upload files")).to_be_visible()
    up.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-error")).to_have_text("Choose one or more files to upload.")
    up.get_by_label("Files", exact=True).set_input_files([str(good), str(bad)])
    up.get_by_label("Document type").select_option("policy")
    up.get_by_label("Readers (ACL)").fill("group:people, user:ana")
    up.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-summary")).to_have_text("1 uploaded, 1 failed: see the messages above.")
    items = page.locator("#upload-list li")
    expect(items.locator(".upload-name")).to_have_text(["remote-work.md", "scan.pdf"])
    expect(items.nth(0)).to_have_class(re.compile("is-done"))
    expect(items.nth(0).locator(".upload-state")).to_have_text(
        re.compile(r"^Added as “Remote Work” \(\d+ passages, readers group:people, user:ana\)$"))
    expect(items.nth(0).locator("progress")).to_have_attribute("value", "100")
    expect(items.nth(1)).to_have_class(re.compile("is-error"))
    # the API's own message: it names the file and says what to do
    expect(items.nth(1).locator(".upload-state")).to_have_text(re.compile(r"^Failed: scan\.pdf: is not a PDF .*allowed types"))
    uploaded = next(d for d in api_docs(srv) if d["title"] == "Remote Work")
    assert (uploaded["doc_type"], uploaded["acl"], uploaded["uploaded"]) == ("policy", ["group:people", "user:ana"], True)
    assert last_action(srv, "document.upload")["target"] == "scan.pdf"
    shot(page, "admin-upload.png")
    page.context.close()
    assert not problems


def test_jobs_listed_with_their_state_and_refreshed_while_running(browser, srv):
    page, problems = signed_in(browser, srv, "jobs")
    expect(page.locator("#jobs-empty")).to_have_text("No ingest jobs yet.")
    page.get_by_role("button", name="Start ingest").click()
    expect(page.locator("#ingest-error")).to_have_text("Enter one or more server paths.")
    page.get_by_label("Server paths").fill("../etc")  # the API's refusal, as it words it
    page.get_by_role("button", name="Start ingest").click()
    expect(page.locator("#ingest-error")).to_have_text(
        "Could not start: paths: '../etc' contains '..'; give the path inside LORE_SERVER__INGEST_ROOTS without it")
    page.get_by_label("Server paths").fill("handbook")
    page.get_by_role("button", name="Start ingest").click()
    rows = page.locator("#jobs-table tbody tr")
    expect(rows).to_have_count(1)
    job = srv.admin.get("/v1/jobs").json()["jobs"][0]
    expect(rows.first).to_have_attribute("data-job-id", job["job_id"])
    # no reload: the list refreshes itself until the job is done
    expect(rows.first.locator(".state")).to_have_text("Succeeded", timeout=60_000)
    expect(rows.first.locator(".result")).to_have_text("2 added, 0 updated, 0 unchanged, 0 deleted")
    expect(rows.first.locator("td.uri")).to_have_text(str(srv.base / "root" / "handbook"))
    expect(page.locator("#jobs-status")).to_have_text("1 jobs")
    assert last_action(srv, "ingest.start")["outcome"] == "succeeded"
    shot(page, "admin-jobs.png")
    page.context.close()
    assert not problems


def test_keys_create_shown_once_list_and_revoke(browser, srv):
    page, problems = signed_in(browser, srv, "keys", permissions=["clipboard-read", "clipboard-write"])
    rows = page.locator("#keys-table tbody tr")
    listed = srv.admin.get("/v1/keys").json()["keys"]
    expect(rows).to_have_count(len(listed))
    mine = srv.keys["admin"].split("_")[1]
    expect(page.locator(f"tr[data-key-id='{mine}'] td.actions")).to_have_text(
        "Your key (revoke it with another admin key)")

    keys = page.locator("#panel-keys")
    keys.get_by_label("User").fill("ana")
    keys.get_by_label("Groups").fill("hr, people")
    keys.get_by_label("Role").select_option("reader")
    keys.get_by_label("Note").fill("HR chatbot")
    keys.get_by_role("button", name="Create key").click()
    panel = page.locator("#new-key")
    expect(panel.get_by_role("heading", name="Copy the new key now")).to_be_focused()
    expect(panel).to_contain_text("This is the only time it is shown")
    key = keys.get_by_label("New key", exact=True).input_value()
    key_id = key.split("_")[1]
    assert re.fullmatch(r"lore_[0-9a-f]{12}_\S+", key)
    expect(page.locator("#new-key-who")).to_have_text(f"ana (reader, key id {key_id})")
    with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {key}"}) as ana:
        assert ana.get("/v1/me").json()["groups"] == ["hr", "people"]
    keys.get_by_role("button", name="Copy", exact=True).click()
    expect(page.locator("#copy-status")).to_have_text("Copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == key
    row = page.locator(f"tr[data-key-id='{key_id}']")
    expect(row.locator("td")).to_have_text(["ana", "hr, people", "reader", "HR chatbot", re.compile(r"\d"), "—",
                                            "Revoke"])
    shot(page, "admin-keys.png", mask=[page.locator("#new-key-value")])  # never a working key in a picture
    keys.get_by_role("button", name="I have stored it").click()  # and it is gone from the page for good
    expect(panel).to_be_hidden()
    secret = key.split("_", 2)[2]
    assert secret not in page.content() and keys.get_by_label("New key", exact=True).input_value() == ""
    page.reload()
    expect(row).to_be_visible()
    assert secret not in page.content()

    row.get_by_role("button", name=f"Revoke key {key_id} (ana)").click()
    dialog = page.get_by_role("dialog", name=f"Revoke key {key_id}?")
    expect(dialog).to_contain_text("get 401 from now on")
    dialog.get_by_role("button", name="Revoke key").click()
    expect(row).to_have_count(0)
    expect(page.locator("#keys-status")).to_contain_text(f"Revoked key {key_id}.")
    with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {key}"}) as ana:
        assert ana.get("/v1/me").status_code == 401  # the revoked key is refused
    keys.get_by_label("Show revoked keys").check()
    expect(row.locator("td.actions")).to_contain_text("Revoked")
    create, revoke = last_action(srv, "key.create"), last_action(srv, "key.revoke")
    assert create["target"] == revoke["target"] == key_id and secret not in str(create)
    page.context.close()
    assert not problems


def test_a_reader_key_sees_no_console_data_and_its_calls_are_refused(browser, srv):
    page, problems = new_page(browser)
    asked: list[str] = []
    page.on("request", lambda r: "/v1/" in r.url and asked.append(r.url.split(srv.url)[1]))
    page.goto(srv.url + "/admin#keys")
    page.get_by_label("API key").fill(srv.keys["sam"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="This page needs an admin key")).to_be_visible()
    expect(page.locator("#app")).to_be_hidden()
    page.reload()
    expect(page.get_by_role("heading", name="This page needs an admin key")).to_be_visible()
    assert set(asked) == {"/v1/me"}  # the console asked for nothing
    content = page.content()
    for d in api_docs(srv):
        assert d["title"] not in content and d["id"] not in content
    expect(page.locator("#docs-table tbody tr, #keys-table tbody tr, #jobs-table tbody tr, #upload-list li"))\
        .to_have_count(0)
    page.context.close()
    assert not problems
    # what the console would call answers 403 to this key (listing documents is every reader's, without ACLs)
    doc_id = api_docs(srv)[0]["id"]
    with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {srv.keys['sam']}"}) as sam:
        for method, path, kw in [("GET", "/v1/keys", {}), ("POST", "/v1/keys", {"json": {"role": "admin"}}),
                                 ("DELETE", "/v1/keys/" + srv.keys["admin"].split("_")[1], {}), ("GET", "/v1/jobs", {}),
                                 ("POST", "/v1/ingest", {"json": {"paths": ["handbook"]}}),
                                 ("DELETE", f"/v1/documents/{doc_id}", {}), ("GET", "/v1/audit/actions", {}),
                                 ("POST", "/v1/documents", {"files": {"file": ("x.md", b"# X\n\nx\n")}})]:
            r = sam.request(method, path, **kw)
            assert r.status_code == 403, (method, path, r.status_code)
        assert all(d["acl"] is None for d in sam.get("/v1/documents").json()["documents"])
    assert srv.admin.get(f"/v1/documents/{doc_id}").status_code == 200


def test_console_files_never_turn_server_text_into_markup():
    """The admin page's rules for the console's scripts: no HTML sinks, no URL from server data, no CDN."""
    sinks = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\s*\(|new Function|"
                       r"srcdoc|createContextualFragment|DOMParser|setAttribute\(\s*[\"']on|\.on[a-z]+\s*=|"
                       r"javascript:|setAttribute\(\s*[\"']style|\.href\s*=")
    names = sorted(p.name for p in WEB.glob("console*.js"))
    assert names == ["console-docs.js", "console-jobs.js", "console-keys.js", "console-util.js", "console.js"]
    for name in names:
        text = (WEB / name).read_text()
        assert not sinks.search(text), f"{name}: {sinks.search(text).group()}"
        assert "https://" not in text and "http://" not in text, name
        assert "localStorage" not in text and "sessionStorage" not in text, name  # a new key is never stored
        for line in text.splitlines():
            assert "href" not in line or "deepLink(" in line, f"{name}: {line.strip()}"


def test_sources_with_their_last_sync_report(browser, srv, tmp_path):
    """A source synced through the API shows its counts; one whose listing failed shows the error."""
    import time

    from tests.support.gitrepo import Repo, date

    repo = Repo(tmp_path / "handbook")
    repo.commit(date(1), files={"specs/api.md": "# API\n\nThe API answers in JSON.\n",
                                "specs/cli.md": "# CLI\n\nThe CLI prints tables.\n"})
    for name, where in (("handbook", str(repo.path)), ("broken", str(tmp_path / "missing"))):
        assert srv.admin.post("/v1/sources", json={"name": name, "kind": "git", "options": {"repo": where},
                                                   "interval_s": 0}).status_code == 201
        assert srv.admin.post(f"/v1/sources/{name}/sync").status_code == 202
        deadline = time.monotonic() + 60
        while srv.admin.get(f"/v1/sources/{name}").json()["status"] in ("running", "never synced"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
    page, problems = signed_in(browser, srv)
    page.get_by_role("tab", name="Sources").click()  # shown once GET /v1/sources answers
    expect(page.locator("#panel-sources")).to_be_visible()
    rows = page.locator("#sources-table tbody tr")
    expect(rows).to_have_count(2)
    ok = page.locator('tr[data-source="handbook"]')
    expect(ok.locator(".state")).to_have_text("ok")
    expect(ok).to_be_visible()
    expect(ok.locator("td.num").first).to_have_text("2")  # added
    bad = page.locator('tr[data-source="broken"]')
    expect(bad.locator(".state")).to_have_text("failed")
    expect(bad.locator(".job-error")).to_contain_text("could not be listed, so nothing changed")
    shot(page, "admin-sources.png")
    page.context.close()
    assert not problems
    for name in ("handbook", "broken"):
        assert srv.admin.delete(f"/v1/sources/{name}").status_code == 200
