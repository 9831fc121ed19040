"""Ingest quality on real documents: exclusions, titles, template tags, PDF line wraps."""

import json
import os
import shutil
import subprocess

import pytest

from ingest.errors import ConfigError
from ingest.formats import parse_file
from ingest.pipeline import doc_id_for
from ingest.titles import split_header_block

from tests.support import ENTERPRISE, LORE, REPO, SAMPLES, snapshot


def _parse(path):
    return parse_file(str(path), path.read_bytes())


def _text(doc):
    return "\n\n".join(b.text for b in doc.blocks)


# -- exclusion -----------------------------------------------------------------------------------

def test_exclude_is_gitignore_style_relative_to_the_root(make_ingestor, corpus):
    shutil.copy(ENTERPRISE / "SOURCES.md", corpus / "SOURCES.md")
    (corpus / "specs" / "drafts").mkdir()
    (corpus / "specs" / "drafts" / "next.md").write_text("# Next\n\nA draft.\n")
    (corpus / "specs" / "drafts" / "keep.md").write_text("# Keep\n\nRe-included? No: its folder is excluded.\n")
    (corpus / ".loreignore").write_text("# provenance, not content\n/SOURCES.md\ndrafts/\n!keep.md\n")
    ing = make_ingestor()
    rep = ing.ingest([corpus], exclude=["specs/*.txt"])  # a path pattern: fnmatch on names never matched it
    names = {os.path.basename(d.uri) for d in ing.store.documents()}
    assert "SOURCES.md" not in names and "next.md" not in names and "keep.md" not in names
    assert "data-retention.txt" not in names and "payments-api.md" in names
    assert rep.added == 9 and rep.excluded == 3  # SOURCES.md, the drafts folder (once), data-retention.txt
    assert rep.to_dict()["excluded"] == 3


def test_newly_excluded_file_leaves_like_a_deleted_one(make_ingestor, corpus):
    shutil.copy(ENTERPRISE / "SOURCES.md", corpus / "SOURCES.md")
    ing = make_ingestor()
    assert ing.ingest([corpus]).added == 11
    doc_id = doc_id_for(corpus / "SOURCES.md")
    assert ing.store.get_document(doc_id) is not None
    rep = ing.ingest([corpus], exclude=["SOURCES.md"])
    assert (rep.deleted, rep.excluded, rep.unchanged) == (1, 1, 10)
    assert ing.store.get_document(doc_id) is None
    snap = snapshot(ing)
    assert not any(i.startswith(doc_id) for i in snap["vector_ids"]) and snap["fts_rows"] == len(snap["chunks"])
    # a file argument is matched by its name; it is skipped, and (as for a missing file) nothing is deleted
    rep = ing.ingest([corpus / "SOURCES.md", corpus / "specs" / "payments-api.md"], exclude=["SOURCES.md"])
    assert (rep.added, rep.excluded, rep.unchanged, rep.deleted) == (0, 1, 1, 0)


def test_bad_patterns_are_named(make_ingestor, corpus):
    ing = make_ingestor()
    with pytest.raises(ConfigError, match=r"--exclude: invalid exclude pattern .*'!'"):
        ing.ingest([corpus], exclude=["!"])
    (corpus / ".loreignore").write_text("ok.md\n\\\n")
    with pytest.raises(ConfigError, match=r"\.loreignore: invalid exclude pattern"):
        ing.ingest([corpus])


def test_cli_exclude_flag_setting_and_summary(tmp_path, corpus):
    shutil.copy(ENTERPRISE / "SOURCES.md", corpus / "SOURCES.md")
    env = {**os.environ, "LORE_INGEST__EXCLUDE": '["*.eml"]'}
    r = subprocess.run([LORE, "ingest", str(corpus), "--data-dir", str(tmp_path / "kb"), "--exclude", "SOURCES.md",
                        "--json"], cwd=REPO, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert (summary["added"], summary["excluded"]) == (9, 2)
    env["LORE_INGEST__EXCLUDE"] = '["a/**b/\\\\"]'
    r = subprocess.run([LORE, "ingest", str(corpus), "--data-dir", str(tmp_path / "kb")], cwd=REPO,
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 2 and "LORE_INGEST__EXCLUDE" in r.stderr


# -- titles --------------------------------------------------------------------------------------

def test_pep_header_gives_the_title_one_field_per_line():
    doc = _parse(ENTERPRISE / "specs" / "pep-0008-style-guide-for-python-code.rst")
    assert doc.title == "PEP 8 \u2013 Style Guide for Python Code"
    header = doc.blocks[0].text.splitlines()
    assert header[:2] == ["PEP: 8", "Title: Style Guide for Python Code"]
    assert header[2].startswith("Author: Guido van Rossum") and "Alyssa Coghlan" in header[2]
    assert "Status: Active" in header
    assert doc.blocks[1].kind == "title" and doc.blocks[1].text == "Introduction"
    assert _parse(ENTERPRISE / "specs" / "pep-0257-docstring-conventions.rst").title.endswith("Docstring Conventions")
    pep387 = _parse(ENTERPRISE / "specs" / "pep-0387-backwards-compatibility-policy.rst").blocks[0].text
    assert "Post-History: 19-Jun-2009, 12-Jun-2020," in pep387 and "https://" not in pep387  # rst links as text


def test_section_headings_do_not_title_a_document():
    retro = _parse(ENTERPRISE / "incidents" / "sourcegraph-3.30-release-incident-retro.md")
    assert retro.blocks[0].text == "Background:" and retro.title is None  # generic, then text: file name
    pd = _parse(ENTERPRISE / "incidents" / "pagerduty-alerting-principles.md")
    assert any(b.kind == "title" and b.text == "Alert Priority" for b in pd.blocks) and pd.title is None
    assert _parse(ENTERPRISE / "incidents" / "pagerduty-security-incident-response.md").title is None
    # unaffected: front matter title, a heading opening the document, the lone top-level heading
    assert _parse(ENTERPRISE / "policies" / "gds-alerting.md").title == "How to manage alerts"
    assert _parse(ENTERPRISE / "specs" / "kep-3140-cronjob-timezone-support.md").title == "KEP-3140: TimeZone support in CronJob"
    assert _parse(SAMPLES / "policies" / "remote-work-policy.pdf").title == "Remote Work Policy"


def test_title_rule_cases(tmp_path):
    def title(name, text):
        p = tmp_path / name
        p.write_text(text)
        return _parse(p).title

    assert title("a.md", "---\ntitle: Declared\n---\n# Heading\n\nBody.\n") == "Declared"
    assert title("b.md", "## Overview\n\n## Release Process\n\nBody.\n") == "Release Process"
    assert title("c.md", "Intro text.\n\n# The Only Top Heading\n\n## Part\n\nBody.\n") == "The Only Top Heading"
    assert title("d.md", "# 1. Introduction\n\nBody.\n\n# 2. Design\n\nMore.\n") is None
    assert title("e.rst", "Author: Ann\nTitle: Header Title\n\nSection\n=======\n\nBody.\n") == "Header Title"
    prose = "Note: this is not a header\nbecause this line is prose.\n\nBody.\n"
    assert split_header_block(prose) == ([], prose)
    assert split_header_block("Title: T\nAuthor: A,\n  B\nAuthor: C\n") == (
        [("Title", "T"), ("Author", "A, B"), ("Author", "C")], "")


def test_titles_in_the_store_fall_back_to_a_readable_file_name(make_ingestor, tmp_path):
    src = tmp_path / "docs"
    src.mkdir()
    for rel in ("incidents/sourcegraph-3.30-release-incident-retro.md", "incidents/pagerduty-severity-levels.md",
                "specs/pep-0008-style-guide-for-python-code.rst", "policies/gds-alerting.md"):
        shutil.copy(ENTERPRISE / rel, src / os.path.basename(rel))
    ing = make_ingestor()
    ing.ingest([src])
    titles = {os.path.basename(d.uri): d.title for d in ing.store.documents()}
    assert titles == {"sourcegraph-3.30-release-incident-retro.md": "Sourcegraph 3.30 release incident retro",
                      "pagerduty-severity-levels.md": "Pagerduty severity levels",
                      "pep-0008-style-guide-for-python-code.rst": "PEP 8 \u2013 Style Guide for Python Code",
                      "gds-alerting.md": "How to manage alerts"}


# -- template tags -------------------------------------------------------------------------------

def test_template_tags_rendered_before_parsing_spans_exact(make_ingestor, tmp_path):
    src = tmp_path / "docs"
    src.mkdir()
    for name in ("gds-alerting.md", "gds-pull-requests.md", "18f-fmla.md", "18f-leave-types.md", "18f-work-schedules.md"):
        shutil.copy(ENTERPRISE / "policies" / name, src / name)
    ing = make_ingestor()
    assert ing.ingest([src]).added == 5
    for d in ing.store.documents():
        text = ing.store.document_text(d.id)
        assert not any(t in text for t in ("<%", "%>", "{%", "%}", "{{", "}}")), d.uri
        for c in ing.store.chunks(d.id):
            assert text[c.start:c.end] == c.text
            assert not any("<%" in s or "{%" in s for s in c.section)
    by_name = {os.path.basename(d.uri): d for d in ing.store.documents()}
    alerting = ing.store.chunks(by_name["gds-alerting.md"].id)
    assert all(c.section[0] == "How to manage alerts" for c in alerting)  # the ERB title tag, resolved
    assert "Do not comment on PRs outside working hours" in ing.store.document_text(by_name["gds-pull-requests.md"].id)
    assert "post in people-ops or email" in " ".join(ing.store.document_text(by_name["18f-fmla.md"].id).split())


def test_template_tags_in_code_are_kept(tmp_path):
    p = tmp_path / "helm.md"
    p.write_text("# Helm\n\nSet `{{ .Values.port }}` here, {% raw %}{{ as is }}{% endraw %}.\n\n"
                 "```yaml\nport: {{ .Values.port }}\n```\n\nDone{% comment %} hidden {% endcomment %}.\n")
    text = _text(_parse(p))
    assert "{{ .Values.port }}" in text and "port: {{ .Values.port }}" in text and "{{ as is }}" in text
    assert "hidden" not in text and "Done." in text


# -- PDF line wraps ------------------------------------------------------------------------------

def test_pdf_wrapped_lines_joined_within_a_page():
    doc = _parse(SAMPLES / "policies" / "remote-work-policy.pdf")
    texts = [b.text for b in doc.blocks]
    assert any("may claim up to EUR 400 once every 3 years for home-office furniture" in t for t in texts)
    assert any("Requests must be approved by People Operations" in t for t in texts)
    assert "2. Equipment" in texts and "3. Working from abroad" in texts  # headings stay their own blocks
    assert all(b.page in (1, 2) for b in doc.blocks)
