"""The Confluence source over a local Confluence speaking the real wire protocol (tests/support/fake_confluence.py),
Cloud and Data Center: inventory with readers, pagination, inherited restrictions, pages leaving, rate
limits, failures that never give a partial inventory, credentials kept out of logs, pages that parse."""

from __future__ import annotations

import base64
import logging
import time

import httpx
import pytest

from ingest.errors import ConfigError
from ingest.formats import parse_file
from ingest.sources.base import ItemUnavailable, SourceUnavailable
from ingest.sources.confluence import ConfluenceSource
from ingest.sources.confluence.http import retry_after_seconds
from ingest.sources.confluence.storage import storage_to_html
from tests.support.fake_confluence import CLOUD_TOKEN, DC_PAT, FakeConfluence, small_docx, small_pdf

DEPLOY = """<p>How to ship the payments service.</p>
<ac:structured-macro ac:name="toc" ac:schema-version="1"><ac:parameter ac:name="maxLevel">3</ac:parameter>
</ac:structured-macro>
<h1>Before you start</h1>
<ac:structured-macro ac:name="warning"><ac:parameter ac:name="title">Freeze</ac:parameter><ac:rich-text-body>
<p>No deploys on Fridays after 15:00.</p></ac:rich-text-body></ac:structured-macro>
<h1>Steps</h1>
<h2>Build</h2>
<ac:structured-macro ac:name="code" ac:schema-version="1"><ac:parameter ac:name="language">bash</ac:parameter>
<ac:plain-text-body><![CDATA[make release && ./deploy.sh --env prod --canary 5%]]></ac:plain-text-body>
</ac:structured-macro>
<h2>Rollout</h2>
<table><tbody><tr><th>Stage</th><th>Traffic</th></tr><tr><td>Canary</td><td>5%</td></tr>
<tr><td>Full</td><td>100%</td></tr></tbody></table>
<p>Escalate to <ac:link><ri:user ri:account-id="557058:x" /></ac:link> or see
<ac:link><ri:page ri:content-title="Rollback guide" /></ac:link>.
<ac:structured-macro ac:name="jira"><ac:parameter ac:name="key">PAY-42</ac:parameter></ac:structured-macro></p>
<ac:image><ri:attachment ri:filename="diagram.png" /></ac:image>"""


def uid(flavor: str, name: str) -> str:
    """Cloud identifies people by account id (with a ':' in older ids), Data Center by username."""
    return f"557058:{name}-0001" if flavor == "cloud" else name


def tok(flavor: str, name: str) -> str:
    return "user:" + uid(flavor, name).replace(":", ".")


def build(flavor: str) -> tuple[FakeConfluence, dict]:
    wiki = FakeConfluence(flavor)
    ana, ben, cy = (uid(flavor, n) for n in ("ana", "ben", "cy"))
    wiki.add_user(ana, ["engineering", "confluence-users"])
    wiki.add_user(ben, ["hr", "confluence-users"])
    wiki.add_user(cy, ["engineering", "confluence-users"])
    wiki.add_space("ENG", users=[ben], groups=["engineering"])
    ids = {"home": wiki.add_page("ENG", "Home", "<p>Welcome to engineering.</p>", author=ana)}
    ids["runbooks"] = wiki.add_page("ENG", "Runbooks", "<p>All runbooks.</p>", parent=ids["home"], author=cy)
    ids["deploy"] = wiki.add_page("ENG", "Deploy", DEPLOY, parent=ids["runbooks"], author=ana)
    ids["hr"] = wiki.add_page("ENG", "HR notes", "<p>Salary review dates.</p>", parent=ids["home"], author=ben)
    wiki.restrict(ids["hr"], users=[ana], groups=["hr"])
    ids["pdf"] = wiki.add_attachment(ids["runbooks"], "rollback.pdf", small_pdf("Rollback takes 12 minutes."),
                                     "application/pdf")
    ids["docx"] = wiki.add_attachment(ids["runbooks"], "on-call checklist.docx",
                                      small_docx("On-call", "Page the secondary after 10 minutes."),
                                      "application/vnd.openxmlformats-officedocument.wordprocessingml.document")
    wiki.add_attachment(ids["runbooks"], "diagram.png", b"\x89PNG\r\n\x1a\nnot really", "image/png")
    wiki.add_attachment(ids["runbooks"], "budget.xlsx", b"PK\x03\x04", "application/vnd.ms-excel")
    return wiki, ids


@pytest.fixture(params=["cloud", "datacenter"])
def env(request):
    wiki, ids = build(request.param)
    with wiki:
        yield wiki, ids


def source(wiki: FakeConfluence, **kw) -> ConfluenceSource:
    kw = {"spaces": ["ENG"], "page_size": 2, "backoff": 0.01, "max_wait": 5.0, "max_retries": 4, **kw}
    return ConfluenceSource("eng-wiki", wiki.url, flavor=wiki.flavor, **wiki.credentials, **kw)


def listing(src: ConfluenceSource) -> dict:
    return {i.external_id: i for i in src.inventory()}


def test_inventory_lists_pages_and_parseable_attachments_with_readers(env):
    wiki, ids = env
    f = wiki.flavor
    items = listing(source(wiki))
    pages = {f"page:{ids[k]}" for k in ("home", "runbooks", "deploy", "hr")}
    atts = {f"attachment:{ids['pdf']}", f"attachment:{ids['docx']}"}
    assert set(items) == pages | atts  # the PNG and the spreadsheet have no parser: not listed
    deploy = items[f"page:{ids['deploy']}"]
    assert deploy.name == f"deploy-{ids['deploy']}.html" and deploy.title == "Deploy" and deploy.version == "1"
    assert deploy.updated_at.endswith("+00:00") and deploy.updated_at.startswith("2026-01-05T08:")
    web = f"/wiki/spaces/ENG/pages/{ids['deploy']}/Deploy" if f == "cloud" else "/confluence/display/ENG/Deploy"
    assert deploy.uri == wiki.root + web
    assert deploy.path == "ENG/Home/Runbooks/Deploy"
    assert deploy.owners == (tok(f, "ana"),)
    space_readers = tuple(sorted(["group:engineering", tok(f, "ben")]))
    assert deploy.acl == space_readers
    # HR notes: restricted to ana and group hr, in a space readable by engineering and ben: ana passes as an
    # engineering member, ben as an hr member; group hr as a whole does not (not all of it may view the space)
    assert items[f"page:{ids['hr']}"].acl == tuple(sorted([tok(f, "ana"), tok(f, "ben")]))
    pdf = items[f"attachment:{ids['pdf']}"]
    assert pdf.name == "rollback.pdf" and pdf.acl == space_readers and pdf.path == "ENG/Home/Runbooks/rollback.pdf"
    assert pdf.version == "1" and pdf.uri.startswith(wiki.url)
    paged = [p for p, _ in wiki.requests if ("cursor=" in p if f == "cloud" else "start=2" in p)]
    assert paged, "a page size of 2 must page through the listing"


def test_page_fetch_parses_into_sections_code_and_tables(env):
    wiki, ids = env
    src = source(wiki)
    item = listing(src)[f"page:{ids['deploy']}"]
    doc = parse_file(item.name, src.fetch(item))
    assert doc.title == "Deploy"
    titles = [(b.text, b.level) for b in doc.blocks if b.kind == "title"]
    assert titles == [("Deploy", 1), ("Before you start", 2), ("Steps", 2), ("Build", 3), ("Rollout", 3)]
    code = [b.text for b in doc.blocks if b.kind == "code"]
    assert code == ["```\nmake release && ./deploy.sh --env prod --canary 5%\n```"]
    table = [b.text for b in doc.blocks if b.kind == "table"]
    assert table == ["Stage: Canary, Traffic: 5%\nStage: Full, Traffic: 100%"]
    text = "\n".join(b.text for b in doc.blocks)
    assert "No deploys on Fridays after 15:00." in text and "see Rollback guide." in text
    for macro_debris in ("maxLevel", "PAY-42", "Freeze", "diagram.png", "ac:", "ri:", "bash"):
        assert macro_debris not in text


def test_attachments_download_and_parse(env):
    wiki, ids = env
    src = source(wiki)
    items = listing(src)
    pdf = items[f"attachment:{ids['pdf']}"]
    assert "Rollback takes 12 minutes." in " ".join(b.text for b in parse_file(pdf.name, src.fetch(pdf)).blocks)
    docx = items[f"attachment:{ids['docx']}"]
    doc = parse_file(docx.name, src.fetch(docx))
    assert "Page the secondary after 10 minutes." in " ".join(b.text for b in doc.blocks)
    # a fresh process without the inventory's download links asks for the attachment first
    assert src.__class__("w2", wiki.url, flavor=wiki.flavor, spaces=["ENG"], **wiki.credentials).fetch(pdf) \
        == src.fetch(pdf)


def test_restriction_added_later_narrows_the_acl_and_is_inherited(env):
    wiki, ids = env
    f = wiki.flavor
    src = source(wiki)
    first = listing(src)
    assert first[f"page:{ids['deploy']}"].acl == tuple(sorted(["group:engineering", tok(f, "ben")]))
    wiki.restrict(ids["runbooks"], users=[uid(f, "cy")])  # on the parent: Deploy inherits it
    second = listing(src)
    for key in ("runbooks", "deploy"):
        assert second[f"page:{ids[key]}"].acl == (tok(f, "cy"),), key
    assert second[f"attachment:{ids['pdf']}"].acl == (tok(f, "cy"),)
    assert second[f"page:{ids['home']}"].acl == first[f"page:{ids['home']}"].acl
    # a restriction on Deploy itself as well: readers must pass both
    wiki.restrict(ids["deploy"], users=[uid(f, "cy"), uid(f, "ana")])
    assert listing(src)[f"page:{ids['deploy']}"].acl == (tok(f, "cy"),)
    wiki.restrict(ids["runbooks"])  # lifted: Deploy keeps only its own restriction (ana, cy in engineering)
    assert listing(src)[f"page:{ids['deploy']}"].acl == tuple(sorted([tok(f, "ana"), tok(f, "cy")]))


def test_archived_trashed_and_deleted_pages_leave_the_inventory(env):
    wiki, ids = env
    src = source(wiki)
    before = listing(src)
    wiki.set_status(ids["hr"], "archived")
    wiki.set_status(ids["deploy"], "trashed")
    wiki.delete_page(ids["runbooks"])  # its attachments go with it
    after = listing(src)
    assert set(after) == {f"page:{ids['home']}"}
    for key in ("hr", "deploy", "runbooks"):
        with pytest.raises(ItemUnavailable) as e:
            src.fetch(before[f"page:{ids[key]}"])
        assert e.value.external_id == f"page:{ids[key]}"
    with pytest.raises(ItemUnavailable):
        src.fetch(before[f"attachment:{ids['pdf']}"])


def test_edit_bumps_the_version_and_fetch_refuses_a_stale_item(env):
    wiki, ids = env
    src = source(wiki)
    old = listing(src)[f"page:{ids['home']}"]
    wiki.edit_page(ids["home"], "<p>Welcome, edited.</p>", editor=uid(wiki.flavor, "cy"))
    new = listing(src)[f"page:{ids['home']}"]
    assert new.version == "2" and new.updated_at > old.updated_at
    assert new.owners == (tok(wiki.flavor, "ana"), tok(wiki.flavor, "cy"))
    assert b"Welcome, edited." in src.fetch(new)
    with pytest.raises(ItemUnavailable, match="changed since it was listed"):
        src.fetch(old)


def test_rate_limit_storm_is_waited_out_as_retry_after_asks(env):
    wiki, ids = env
    src = source(wiki)
    wiki.storm(3, retry_after="0.2")
    t0 = time.monotonic()
    items = listing(src)
    assert time.monotonic() - t0 >= 0.6  # three waits of 0.2 s, not the 0.01 s backoff
    assert len(items) == 6 and [s for _, s in wiki.requests].count(429) == 3
    wiki.storm(2, retry_after="0", status=503)
    assert len(listing(src)) == 6


def test_endless_storm_or_a_wait_over_budget_is_source_unavailable(env):
    wiki, _ = env
    wiki.storm(None, retry_after="0.01")
    with pytest.raises(SourceUnavailable, match="HTTP 429, still failing after 4 retries"):
        listing(source(wiki))
    assert len(wiki.requests) == 5
    wiki.storm(None, retry_after="3600")
    t0 = time.monotonic()
    with pytest.raises(SourceUnavailable, match="retry budget"):
        listing(source(wiki))
    assert time.monotonic() - t0 < 2


def test_retry_after_as_seconds_or_http_date():
    assert retry_after_seconds("7") == 7.0 and retry_after_seconds("0.5") == 0.5
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None


@pytest.mark.parametrize("kind", ["status", "json", "drop"])
def test_inventory_failing_midway_gives_no_partial_listing(env, kind):
    wiki, _ = env
    src = source(wiki)
    total = len(listing(src))
    calls = wiki.served
    for n in (2, calls // 2, calls):  # early, in the middle, at the very last request
        wiki.fail_at(n, kind=kind, status=500)
        it = src.inventory()
        with pytest.raises(SourceUnavailable, match="nothing was listed"):
            next(it)  # not one item before the failure
        wiki.clear_faults()
    assert len(listing(src)) == total


def test_missing_permission_to_read_permissions_fails_closed(env):
    wiki, ids = env
    wiki.forbidden.add("/permissions")
    with pytest.raises(SourceUnavailable) as e:
        listing(source(wiki))
    assert "permissions of space ENG" in str(e.value) and "HTTP 403" in str(e.value)
    wiki.forbidden = {"/restriction/"}
    if wiki.flavor == "datacenter":  # Data Center reads restrictions with the listing, so only ancestors
        wiki.set_status(ids["runbooks"], "archived")  # outside it are asked for
    with pytest.raises(SourceUnavailable, match=r"view restrictions of page \d+: HTTP 403.*lacks permission"):
        listing(source(wiki))


def test_credentials_never_in_logs_errors_or_reprs(env, caplog):
    wiki, ids = env
    secret = CLOUD_TOKEN if wiki.flavor == "cloud" else DC_PAT
    caplog.set_level(logging.DEBUG)
    src = source(wiki)
    wiki.storm(2, retry_after="0")
    items = listing(src)
    src.fetch(items[f"page:{ids['home']}"])
    errors = []
    wiki.fail_at(1, kind="drop")
    with pytest.raises(SourceUnavailable) as e:
        listing(src)
    errors.append(str(e.value))
    wiki.clear_faults()
    bad = ConfluenceSource("w", wiki.url, flavor=wiki.flavor, spaces=["ENG"], max_retries=0,
                           **{k: v + "x" if k in ("token", "pat") else v for k, v in wiki.credentials.items()})
    with pytest.raises(SourceUnavailable, match="401.*credentials were refused") as e:
        listing(bad)
    errors.append(str(e.value))
    with pytest.raises(ItemUnavailable) as e2:
        bad.fetch(items[f"page:{ids['home']}"])
    errors.append(str(e2.value))
    with pytest.raises(ConfigError) as e3:
        ConfluenceSource("w", wiki.url, flavor="onprem", spaces=["ENG"], token=secret, pat=secret)
    errors.append(str(e3.value))
    encoded = base64.b64encode(f"x:{secret}".encode()).decode()[4:]
    seen = caplog.text + "\n".join(errors) + repr(src) + repr(bad) + repr(src.__dict__)
    for leak in (secret, secret[:12], encoded[:16]):
        assert leak not in seen
    assert [r for r in caplog.records if "retrying" in r.getMessage()]  # the storm was logged, without them


def test_readers_nobody_in_lore_can_hold_leave_the_page_out(env, caplog):
    wiki, ids = env
    wiki.restrict(ids["runbooks"], groups=["Board Members"])  # a group name no Lore token can carry
    items = listing(source(wiki))
    assert f"page:{ids['runbooks']}" not in items and f"page:{ids['deploy']}" not in items
    assert f"attachment:{ids['pdf']}" not in items and f"page:{ids['home']}" in items
    assert "readable by no Lore principal" in caplog.text
    assert all(i.acl for i in items.values())  # never an empty ACL (the default would apply)


def test_a_restriction_naming_a_deleted_user_keeps_the_others(env, caplog):
    wiki, ids = env
    f = wiki.flavor
    wiki.restrict(ids["deploy"], users=[uid(f, "zed"), uid(f, "cy")])  # zed's account is gone: memberof 404
    assert listing(source(wiki))[f"page:{ids['deploy']}"].acl == (tok(f, "cy"),)
    assert "not found; that user passes no group permission" in caplog.text


def test_next_links_from_the_link_header():
    from ingest.sources.confluence.http import _link_next

    assert _link_next('</wiki/api/v2/pages?limit=5&cursor=abc>; rel="next", </wiki>; rel="base"') \
        == "/wiki/api/v2/pages?limit=5&cursor=abc"
    assert _link_next('</wiki>; rel="base"') is None and _link_next(None) is None


def test_all_users_groups_and_anonymous_access():
    with FakeConfluence("datacenter") as wiki:
        wiki.add_user("ana", ["confluence-users"])
        wiki.add_space("PUB", anonymous=True, groups=["confluence-users"])
        wiki.add_space("ALL", groups=["confluence-users"])
        home = wiki.add_page("PUB", "Handbook", "<p>Public.</p>", author="ana")
        secret = wiki.add_page("ALL", "Plans", "<p>Plans.</p>", author="ana")
        open_page = wiki.add_page("ALL", "Lunch", "<p>Menu.</p>", author="ana")
        wiki.restrict(secret, users=["ana"], groups=["finance"])
        items = listing(source(wiki, spaces=["PUB", "ALL"]))
        assert items[f"page:{home}"].acl == ("group:confluence-users", "public")
        assert items[f"page:{open_page}"].acl == ("group:confluence-users",)
        # everyone licensed may view the space, so the restriction alone decides
        assert items[f"page:{secret}"].acl == ("group:finance", "user:ana")
    with FakeConfluence("cloud") as wiki:  # RBAC role principals are not expanded: fail closed
        wiki.add_space("R", roles=["role-viewer"], groups=["staff"])
        page = wiki.add_page("R", "Page", "<p>x</p>", author="557058:ana")
        assert listing(source(wiki, spaces=["R"]))[f"page:{page}"].acl == ("group:staff",)


def test_slow_answers_are_waited_for_up_to_the_timeout_then_retried(env):
    wiki, ids = env
    wiki.delay = 0.05
    with httpx.Client(timeout=2.0) as client:  # an injected client: its timeout, its pool
        assert len(listing(source(wiki, client=client))) == 6
    wiki.delay = 0.5
    with httpx.Client(timeout=0.1) as client, pytest.raises(SourceUnavailable, match="ReadTimeout.*2 retries"):
        listing(source(wiki, client=client, max_retries=2))


def test_datacenter_listing_without_whole_restrictions_asks_the_restriction_endpoint():
    wiki, ids = build("datacenter")
    with wiki:
        original = wiki._dc_page

        def cut(p, expand):  # a listing that leaves the user list unexpanded, as a proxy or old version may
            out = original(p, expand)
            if "restrictions" in out:
                out["restrictions"]["read"]["restrictions"]["user"] = {"_expandable": {"results": ""}}
            return out

        wiki._dc_page = cut
        items = listing(source(wiki))
        assert items[f"page:{ids['hr']}"].acl == ("user:ana", "user:ben")
        asked = [p for p, _ in wiki.requests if "/restriction/byOperation/read" in p]
        assert len(asked) == 4  # every page, since no listed restriction was whole


def test_unknown_space_and_bad_arguments(env):
    wiki, _ = env
    with pytest.raises(SourceUnavailable, match="space NOPE"):
        listing(source(wiki, spaces=["ENG", "NOPE"]))
    with pytest.raises(ConfigError, match="page_size"):
        source(wiki, page_size=0)
    with pytest.raises(ConfigError, match="spaces"):
        source(wiki, spaces=[])
    with pytest.raises(ConfigError, match="needs"):
        ConfluenceSource("w", wiki.url, flavor=wiki.flavor, spaces=["ENG"])
    with pytest.raises(ConfigError, match="must not hold credentials") as e:
        ConfluenceSource("w", "https://bot:hunter2@wiki.acme.test", flavor="datacenter", spaces=["ENG"], pat="p")
    assert "hunter2" not in str(e.value)


def test_storage_macros_reduce_to_text_or_nothing():
    storage = (
        '<ac:layout><ac:layout-section ac:type="two_equal"><ac:layout-cell><h3>Left</h3><p>One</p></ac:layout-cell>'
        '<ac:layout-cell><ac:task-list><ac:task><ac:task-id>7</ac:task-id><ac:task-status>incomplete'
        '</ac:task-status><ac:task-body>Rotate keys</ac:task-body></ac:task></ac:task-list></ac:layout-cell>'
        '</ac:layout-section></ac:layout><p>Due <time datetime="2026-02-01" />, see <ac:link>'
        '<ri:attachment ri:filename="plan.pdf" /><ac:plain-text-link-body><![CDATA[the plan]]>'
        '</ac:plain-text-link-body></ac:link>.<ac:structured-macro ac:name="status"><ac:parameter ac:name="title">'
        'DONE</ac:parameter></ac:structured-macro></p><ac:structured-macro ac:name="noformat"><ac:plain-text-body>'
        '<![CDATA[a <b> & c]]></ac:plain-text-body></ac:structured-macro>')
    html = storage_to_html(storage, "Plan")
    assert "ac:" not in html and "ri:" not in html and "<h4>Left</h4>" in html
    doc = parse_file("plan-1.html", html.encode())
    blocks = [(b.kind, b.text) for b in doc.blocks]
    assert ("list", "Rotate keys") in blocks and ("code", "```\na <b> & c\n```") in blocks
    assert any(k == "text" and "Due 2026-02-01, see the plan." in t for k, t in blocks)
    assert "DONE" not in html


def test_generated_space_of_5000_pages_is_cheap_to_hold_and_list():
    with FakeConfluence("datacenter") as wiki:
        t0 = time.monotonic()
        ids = wiki.generate_space("BIG", 5000, fanout=20)
        assert time.monotonic() - t0 < 2
        wiki.add_user("ana", ["staff"])
        wiki.restrict(ids[1], users=["ana"])  # inherited by the subtree under page 1
        t0 = time.monotonic()
        items = listing(source(wiki, spaces=["BIG"], page_size=250))
        elapsed = time.monotonic() - t0
        assert len(items) == 5000 and items[f"page:{ids[0]}"].acl == ("group:staff",)
        assert items[f"page:{ids[21]}"].path == "BIG/BIG page 0/BIG page 1/BIG page 21"
        assert items[f"page:{ids[21]}"].acl == ("user:ana",)
        assert elapsed < 60
