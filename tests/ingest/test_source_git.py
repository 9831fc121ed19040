"""GitSource against real repositories made here with the git CLI (deterministic authors and dates)."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from ingest.discover import discover
from ingest.errors import ConfigError
from ingest.sources.base import ItemUnavailable, Source, SourceItem, SourceUnavailable
from ingest.sources.git import GitSource
from tests.support import ENTERPRISE
from tests.support.gitrepo import Repo, date


def text(n: int, tag: str = "") -> str:
    """A file body long enough that git's rename detection sees a small edit as the same file."""
    return "".join(f"Line {i} of the document {tag}about policies.\n" for i in range(n))


def by_path(items) -> dict[str, SourceItem]:
    return {i.path: i for i in items}


@pytest.fixture()
def repo(tmp_path) -> Repo:
    return Repo(tmp_path / "work")


@pytest.fixture()
def source(repo, tmp_path):
    def make(**kw) -> GitSource:
        kw.setdefault("cache_dir", tmp_path / "cache")
        return GitSource(kw.pop("name", "handbook"), kw.pop("repo", str(repo.path)), **kw)
    return make


def test_inventory_lists_parseable_files_with_blob_ids_commit_dates_and_links(repo, source):
    c1 = repo.commit(date(1), files={"a.md": text(5), "docs/b.rst": "Title\n=====\n\nBody.\n", "logo.png": b"\x89PNG",
                                     ".hidden.md": "x", "docs/.drafts/c.md": "x", "notes.txt": "plain"})
    repo.git("commit", "-q", "--allow-empty", "-m", "later", when=date(3))  # an empty commit touches nothing
    src: Source = source(acl=("group:staff", "public"))  # the type checker holds it to the protocol
    items = by_path(src.inventory())
    assert sorted(items) == ["a.md", "docs/b.rst", "notes.txt"]
    a = items["a.md"]
    assert (a.external_id, a.name, a.version, a.updated_at) == ("a.md", "a.md", repo.blob("a.md"), date(1))
    assert a.uri == f"{repo.path}/blob/{c1}/a.md"
    assert a.acl == ("group:staff", "public") and a.owners == ("user:ana@example.com",)
    assert items["docs/b.rst"].name == "b.rst"
    assert src.fetch(a) == text(5).encode()
    assert src.last_walk == "full"


def test_edit_changes_version_and_date_and_an_unchanged_resync_reads_no_history(repo, source):
    repo.commit(date(1), files={"a.md": text(5), "b.md": text(3, "b ")})
    src = source()
    first = by_path(src.inventory())
    again = by_path(src.inventory())
    assert (again, src.last_walk) == (first, "unchanged")
    repo.git("commit", "-q", "--allow-empty", "-m", "x", when=date(2))
    repo.commit(date(4, 30), files={"a.md": text(6)}, author="bob@example.com")
    now = by_path(src.inventory())
    assert src.last_walk == "incremental"
    assert now["a.md"].version == repo.blob("a.md") != first["a.md"].version
    assert now["a.md"].updated_at == date(4, 30)
    assert now["a.md"].owners == ("user:bob@example.com", "user:ana@example.com")
    assert now["b.md"] == first["b.md"]


def test_committer_date_not_author_date(repo, source):
    repo.write("a.md", "x")
    repo.git("add", "-A")
    env_when = date(9)
    subprocess.run(["git", "commit", "-q", "-m", "m"], cwd=repo.path, check=True, env={
        "PATH": os.environ["PATH"], "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@example.com", "GIT_AUTHOR_DATE": date(1),
        "GIT_COMMITTER_NAME": "c", "GIT_COMMITTER_EMAIL": "c@example.com", "GIT_COMMITTER_DATE": env_when})
    assert [i.updated_at for i in source().inventory()] == [env_when]


@pytest.mark.parametrize("edit", [False, True], ids=["pure", "with-edits"])
def test_a_rename_keeps_the_external_id_across_syncs_and_on_a_fresh_cache(repo, source, tmp_path, edit):
    repo.commit(date(1), files={"a.md": text(20), "z.md": "other"})
    src = source()
    before = by_path(src.inventory())["a.md"]
    (repo.path / "guide").mkdir()
    repo.git("mv", "a.md", "guide/a2.md")
    if edit:
        repo.write("guide/a2.md", text(20) + "One more line.\n")
    moved = repo.commit(date(5), author="eve@example.com")
    items = by_path(src.inventory())
    assert src.last_walk == "incremental"
    assert "a.md" not in items
    after = items["guide/a2.md"]
    assert after.external_id == before.external_id == "a.md"
    assert after.name == "a2.md" and after.uri.endswith(f"/blob/{moved}/guide/a2.md")
    if edit:
        assert (after.updated_at, after.owners) == (date(5), ("user:eve@example.com", "user:ana@example.com"))
        assert after.version != before.version
    else:  # the content did not change: neither did its date, version or authors
        assert (after.updated_at, after.version, after.owners) == (before.updated_at, before.version, before.owners)
    fresh = by_path(source(cache_dir=tmp_path / "fresh").inventory())
    assert {p: i.external_id for p, i in fresh.items()} == {p: i.external_id for p, i in items.items()}


def test_a_new_file_where_a_renamed_one_was_gets_its_own_id(repo, source):
    repo.commit(date(1), files={"a.md": text(20)})
    src = source()
    src.inventory()
    repo.git("mv", "a.md", "b.md")
    repo.commit(date(2))
    c3 = repo.commit(date(3), files={"a.md": "A new, different file.\n"})
    items = by_path(src.inventory())
    assert items["b.md"].external_id == "a.md"
    assert items["a.md"].external_id == f"a.md@{c3[:12]}"
    # (in one commit, `git mv a.md b.md` plus a new a.md reads as an edit of a.md and a new b.md: git's
    # rename detection without -B only pairs paths that disappeared)


def test_syncing_along_a_random_history_gives_what_a_fresh_cache_gives(repo, source, tmp_path):
    """Adds, edits, renames (with and without edits) and deletes, synced at random points: the long-lived
    cache's inventory equals one computed from the history alone, and ids stay unique."""
    rnd = random.Random(18)
    live: list[str] = []
    walks: set[str] = set()
    src = source()
    for n in range(40):
        ops = rnd.choices(["add", "edit", "move", "delete"], [3, 3, 2, 1], k=rnd.randint(1, 3)) if live else ["add"]
        for op in ops:
            if op == "add" or not live:
                f = f"d{rnd.randint(0, 2)}/f{n}-{len(live)}.md"
                live.append(f)
                repo.write(f, text(12, f"{f} "))
            elif op == "edit":
                f = rnd.choice(live)
                repo.write(f, (repo.path / f).read_text() + f"edit {n}\n")
            elif op == "move":
                f = rnd.choice(live)
                to = f"d{rnd.randint(0, 2)}/m{n}-{live.index(f)}.md"
                (repo.path / to).parent.mkdir(exist_ok=True)
                (repo.path / f).rename(repo.path / to)  # git finds the rename itself, as after `git mv`
                live[live.index(f)] = to
                if rnd.random() < 0.5:
                    repo.write(to, (repo.path / to).read_text() + "moved and edited\n")
            else:
                f = live.pop(rnd.randrange(len(live)))
                (repo.path / f).unlink()
        repo.commit(date(1 + n // 20, n % 60), author=f"w{n % 4}@example.com")
        if rnd.random() < 0.3:
            src.inventory()
            walks.add(src.last_walk)
    kept = list(src.inventory())
    assert walks == {"full", "incremental"}
    assert kept == list(source(cache_dir=tmp_path / "fresh").inventory())
    assert sorted(i.path for i in kept) == sorted(live)
    assert len({i.external_id for i in kept}) == len(kept)
    assert sum(i.external_id != i.path for i in kept) >= 3  # renames happened and were followed


def test_a_deleted_file_leaves_the_inventory(repo, source):
    repo.commit(date(1), files={"a.md": "a", "b.md": "b"})
    src = source()
    assert len(list(src.inventory())) == 2
    repo.git("rm", "-q", "a.md")
    repo.commit(date(2))
    assert [i.path for i in src.inventory()] == ["b.md"]


def test_codeowners_last_matching_rule_wins_with_teams_users_and_emails(repo, source):
    repo.commit(date(1), files={
        ".github/CODEOWNERS": "# owners\n*  @Acme/Writers\n*.rst docs-lead@example.com\n"
                              "/docs/ @acme/docs @Bob # the docs team\ndocs/api/* @acme/api\n/docs/free.md\n",
        "CODEOWNERS": "* @ignored\n",  # .github/ comes first, as on GitHub
        "top.md": "t", "guide.rst": "g", "docs/a.md": "a", "docs/api/x.md": "x", "docs/api/v1/y.md": "y",
        "docs/free.md": "f"})
    items = {p: i.owners for p, i in by_path(source().inventory()).items()}
    assert items["top.md"] == ("group:writers",)
    assert items["guide.rst"] == ("user:docs-lead@example.com",)
    assert items["docs/a.md"] == ("group:docs", "user:bob")
    assert items["docs/api/x.md"] == ("group:api",)
    assert items["docs/api/v1/y.md"] == ("group:docs", "user:bob")  # dir/* holds only the files directly in dir
    assert items["docs/free.md"] == ("user:ana@example.com",)  # a rule naming nobody: the authors


def test_without_codeowners_the_three_most_recent_distinct_authors_own_a_file(repo, source):
    for day, who in enumerate(["ana", "bob", "ana", "cy", "dee"], 1):
        repo.commit(date(day), author=f"{who}@Example.com", files={"a.md": text(20, who)})
    assert next(source().inventory()).owners == ("user:dee@example.com", "user:cy@example.com",
                                                 "user:ana@example.com")


def test_sub_paths_each_with_its_own_loreignore(repo, source):
    repo.commit(date(1), files={"top.md": "t", "docs/a.md": "a", "docs/old/b.md": "b", "docs/.loreignore": "old/\n",
                                "handbook/h.md": "h", "handbook/skip.md": "s", "other/o.md": "o"})
    assert [i.path for i in source(paths=("docs",)).inventory()] == ["docs/a.md"]
    src = source(paths=("/docs/", "handbook", "top.md"), exclude=("skip.md",))
    assert [i.path for i in src.inventory()] == ["docs/a.md", "handbook/h.md", "top.md"]
    with pytest.raises(SourceUnavailable, match=r"no 'nope'.*fix paths="):
        list(source(paths=("docs", "nope")).inventory())
    with pytest.raises(ConfigError, match="leaves the repository"):
        source(paths=("../x",))


def test_loreignore_and_excludes_select_what_discover_selects_in_a_checkout(repo, source):
    repo.commit(date(1), files={
        ".loreignore": "# not knowledge\nSOURCES.md\ndrafts/\n!drafts/keep.md\n*.txt\n!important.txt\n",
        "SOURCES.md": "s", "a.md": "a", "drafts/x.md": "x", "drafts/keep.md": "k", "n.txt": "n",
        "important.txt": "i", "sub/SOURCES.md": "s2", "sub/tmp/t.md": "t", "sub/k.rst": "k"})
    for exclude in [(), ("tmp/",), ("*.rst", "a.md")]:
        got = sorted(i.path for i in source(exclude=exclude).inventory())
        want = sorted(c.path.relative_to(repo.path).as_posix() for c in discover([repo.path], exclude).candidates)
        assert got == want, exclude
    assert "drafts/keep.md" not in got  # a pruned folder's files cannot be re-included, as in git


def test_a_bad_loreignore_line_stops_the_inventory(repo, source):
    repo.commit(date(1), files={".loreignore": "[z-a]\n", "a.md": "a"})
    with pytest.raises(SourceUnavailable, match=r"\.loreignore.*invalid exclude pattern '\[z-a\]'"):
        list(source().inventory())


def test_link_templates(repo, source, tmp_path):
    c1 = repo.commit(date(1), files={"my docs/a b.md": "x"})
    src = source(link="https://git.example.com/handbook/-/blob/{branch}/{path}?at={commit}")
    assert next(src.inventory()).uri == f"https://git.example.com/handbook/-/blob/main/my%20docs/a%20b.md?at={c1}"
    assert next(source(link=None).inventory()).uri == f"{repo.path}@{c1}:my docs/a b.md"
    with pytest.raises(ConfigError, match=r"\{sha\}"):
        source(link="https://x/{sha}/{path}")
    remote = GitSource("h", "https://bot:s3cret@git.example.com/org/handbook.git", cache_dir=tmp_path / "c")
    assert "s3cret" not in remote.shown and remote.shown == "https://git.example.com/org/handbook.git"
    assert remote._link("abc", "a.md") == "https://git.example.com/org/handbook/blob/abc/a.md"


def test_a_url_is_mirrored_into_the_cache_and_later_commits_are_fetched(repo, source, tmp_path):
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    repo.commit(date(1), files={"a.md": text(5)})
    repo.git("push", "-q", str(origin), "main")
    cache = tmp_path / "cache"
    src = source(repo=origin.as_uri(), cache_dir=cache)
    assert [i.path for i in src.inventory()] == ["a.md"]
    assert src.mirror.parent == cache and (src.mirror / "HEAD").is_file()
    repo.commit(date(2), files={"b.md": "b"})
    repo.git("push", "-q", str(origin), "main")
    items = by_path(src.inventory())
    assert sorted(items) == ["a.md", "b.md"] and src.last_walk == "incremental"
    assert src.fetch(items["b.md"]) == b"b"


def test_the_callers_git_environment_and_config_do_not_reach_git(repo, source, tmp_path):
    repo.commit(date(1), files={"a.md": "a"})
    hostile = tmp_path / "gitconfig"
    hostile.write_text(f'[url "file:///nowhere/"]\n\tinsteadOf = {repo.path.as_uri()}\n')
    os.environ.update(GIT_CONFIG_GLOBAL=str(hostile), GIT_DIR=str(tmp_path / "nowhere"), GIT_TERMINAL_PROMPT="1")
    assert [i.path for i in source(repo=repo.path.as_uri()).inventory()] == ["a.md"]


def test_a_remote_helper_that_runs_commands_is_refused(source, tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(SourceUnavailable, match="cannot fetch"):
        list(source(repo=f"ext::sh -c touch% {marker}").inventory())
    assert not marker.exists()


def test_a_force_push_walks_everything_and_keeps_ids_through_a_tree_diff(repo, source, tmp_path):
    repo.commit(date(1), files={"a.md": text(20), "gone.md": "g"})
    repo.git("mv", "a.md", "b.md")
    repo.commit(date(2))
    src = source()
    assert by_path(src.inventory())["b.md"].external_id == "a.md"
    repo.git("checkout", "-q", "--orphan", "rewritten")  # one squashed commit, no trace of a.md
    repo.git("rm", "-q", "--cached", "gone.md")
    (repo.path / "gone.md").unlink()
    c = repo.commit(date(3), files={"b.md": text(20) + "edited\n", "new.md": "n"})
    repo.git("branch", "-q", "-M", "main")
    items = by_path(src.inventory())
    assert src.last_walk == "full"
    assert {p: i.external_id for p, i in items.items()} == {"b.md": "a.md", "new.md": "new.md"}
    assert items["b.md"].updated_at == date(3) and items["b.md"].uri.endswith(f"/{c}/b.md")
    fresh = by_path(source(cache_dir=tmp_path / "fresh").inventory())
    assert fresh["b.md"].external_id == "b.md"  # history alone no longer knows the old name


def test_a_merge_is_one_change_made_when_it_lands_on_the_branch(repo, source, tmp_path):
    repo.commit(date(1), files={"a.md": text(20), "b.md": text(20, "b "), "c.md": "c"})
    src = source()
    src.inventory()
    repo.git("checkout", "-q", "-b", "feature")
    repo.git("mv", "b.md", "b2.md")
    repo.commit(date(2), files={"a.md": text(21)}, author="fay@example.com")
    repo.git("checkout", "-q", "main")
    repo.commit(date(3), files={"c.md": "c, edited"})
    repo.git("merge", "-q", "--no-ff", "-m", "merge feature", "feature", author="max@example.com", when=date(4))
    items = by_path(src.inventory())
    assert src.last_walk == "incremental"
    assert (items["a.md"].updated_at, items["a.md"].owners[0]) == (date(4), "user:max@example.com")
    assert items["b2.md"].external_id == "b.md" and items["c.md"].updated_at == date(3)
    assert list(src.inventory()) == list(source(cache_dir=tmp_path / "fresh").inventory())


def test_an_old_head_that_became_a_second_parent_falls_back_to_a_full_walk(repo, source, tmp_path):
    repo.commit(date(1), files={"a.md": text(20)})
    repo.git("checkout", "-q", "-b", "feature")
    repo.commit(date(2), files={"f.md": "f"})
    repo.git("checkout", "-q", "main")
    repo.git("mv", "a.md", "a2.md")
    repo.commit(date(3))
    src = source()
    src.inventory()  # at main's head, which is about to become the second parent of a merge
    repo.git("checkout", "-q", "feature")
    repo.git("merge", "-q", "--no-ff", "-m", "merge main", "main", when=date(4))
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--ff-only", "feature")
    items = by_path(src.inventory())
    assert src.last_walk == "full"
    assert sorted(items) == ["a2.md", "f.md"] and items["a2.md"].external_id == "a.md"
    assert list(src.inventory()) == list(source(cache_dir=tmp_path / "fresh").inventory())


def test_errors_name_the_repository_the_branch_and_the_fix(repo, source, tmp_path):
    with pytest.raises(SourceUnavailable, match=r"no folder .*missing.*set repo="):
        list(source(repo=str(tmp_path / "missing")).inventory())
    (tmp_path / "plain").mkdir()
    with pytest.raises(SourceUnavailable, match=r"cannot fetch .*not appear to be a git repository.*check that repo="):
        list(source(repo=str(tmp_path / "plain")).inventory())
    repo.commit(date(1), files={"a.md": "a"})
    with pytest.raises(SourceUnavailable, match=r"branch 'master'.*no branch 'master' \(it has: main\); set branch="):
        list(source(branch="master").inventory())
    with pytest.raises(ConfigError, match="branch"):
        source(branch="-x")
    (tmp_path / "a-file").write_text("")
    with pytest.raises(SourceUnavailable, match=r"cannot use the cache folder .*set cache_dir="):
        list(source(repo=repo.path, cache_dir=tmp_path / "a-file").inventory())
    src = source()
    item = next(src.inventory())
    with pytest.raises(ItemUnavailable, match="not in the mirror"):
        src.fetch(SourceItem("a.md", "a.md", "0" * 40, date(1), "u"))
    with pytest.raises(ItemUnavailable, match="not a git blob id"):
        src.fetch(SourceItem("a.md", "a.md", "--all", date(1), "u"))
    shutil.rmtree(repo.path)  # the repository went away: no inventory from the stale mirror
    with pytest.raises(SourceUnavailable, match="no folder"):
        list(src.inventory())
    assert src.fetch(item) == b"a"  # a listed version stays readable from the mirror


def commit_corpus(repo: Repo, corpus: Path) -> dict[str, str]:
    """One commit per file of the corpus (copied, never changed in place); path -> its commit date."""
    dates = {}
    files = sorted(p for p in corpus.rglob("*") if p.is_file())
    for n, f in enumerate(files):
        rel = f.relative_to(corpus).as_posix()
        when = f"2024-0{1 + n // 28 % 9}-{1 + n % 28:02d}T09:{n % 60:02d}:00+02:00"
        repo.commit(when, files={rel: f.read_bytes()}, author=f"w{n % 5}@example.com")
        dates[rel] = when
    return dates


def test_the_enterprise_corpus_in_a_repository_lists_what_discover_finds(repo, source, tmp_path):
    dates = commit_corpus(repo, ENTERPRISE)
    src = source()
    started = time.perf_counter()
    items = by_path(src.inventory())
    first = time.perf_counter() - started
    want = {c.path.relative_to(ENTERPRISE).as_posix() for c in discover([ENTERPRISE]).candidates}
    assert set(items) == want and len(want) > 100
    for path, item in items.items():
        assert item.updated_at == dates[path]
        assert src.fetch(item) == (ENTERPRISE / path).read_bytes()
    started = time.perf_counter()
    again = by_path(src.inventory())
    resync = time.perf_counter() - started
    assert again == items and src.last_walk == "unchanged"
    print(f"\nenterprise repo, {len(dates)} commits: first inventory {first * 1000:.0f} ms, "
          f"unchanged re-sync {resync * 1000:.0f} ms")
