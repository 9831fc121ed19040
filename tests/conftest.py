"""Shared fixtures: real model, real Chroma, real SQLite, in temporary data dirs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support import ENTERPRISE_DIRS, LORE, REPO, SAMPLES

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
# The developer's own settings (LORE_* in their shell) never reach a test: every test starts from the
# defaults plus what the suite itself sets.
for _name in [k for k in os.environ if k.startswith("LORE_") and k != "LORE_SCREENSHOTS"]:  # a test switch
    del os.environ[_name]



@pytest.fixture(scope="session", autouse=True)
def sample_binaries() -> None:
    """The sample corpus's PDF/DOCX/PPTX are generated, not committed."""
    subprocess.run([sys.executable, str(REPO / "samples" / "build.py"), "--check"], check=True)


@pytest.fixture(autouse=True)
def isolated_environment():
    """A test that changes os.environ changes it for itself only: the next test sees it as it was."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory) -> Path:
    """One ONNX export per test session, shared with the CLI subprocesses through the environment."""
    d = tmp_path_factory.mktemp("onnx-models")
    os.environ["LORE_EMBEDDING__ONNX_CACHE_DIR"] = str(d)
    return d


@pytest.fixture(scope="session")
def embedder(onnx_cache):
    """The default backend (int8 ONNX export of the bundled MiniLM), as the product runs it."""
    from ingest.onnx_embedder import OnnxEmbedder

    return OnnxEmbedder(cache_dir=onnx_cache)


@pytest.fixture(scope="session")
def torch_embedder():
    from ingest.embedders import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


@pytest.fixture()
def make_ingestor(tmp_path, embedder):
    """Build an Ingestor over a fresh data dir (embedded Chroma) with the real model."""
    from ingest.chroma_store import ChromaChunkStore
    from ingest.pipeline import Ingestor
    from ingest.sqlite_store import SqliteStore

    def make(data_dir: Path | None = None, **kw):
        d = data_dir or tmp_path / "kb"
        store = SqliteStore(d / "lore.db")
        vectors = ChromaChunkStore(embedder.model_id, path=d / "chroma")
        kw.setdefault("parse_workers", 0)
        return Ingestor(store, vectors, embedder, **kw)

    return make


@pytest.fixture()
def corpus(tmp_path) -> Path:
    """A writable copy of the sample corpus."""
    dst = tmp_path / "corpus"
    shutil.copytree(SAMPLES, dst)
    return dst


# A sitecustomize that every Python process of a run imports (parser workers included) when its folder is
# on PYTHONPATH: an audit hook refusing any socket connect or DNS lookup.
NO_NET = textwrap.dedent("""
    import sys
    def _lore_no_network(event, args):
        if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "urllib.Request"):
            host = args[1] if event == "socket.connect" else args[0]
            sys.stderr.write(f"NETWORK ACCESS ATTEMPTED: {event} {host!r}\\n")
            raise RuntimeError(f"network access attempted during ingest: {event} {host!r}")
    sys.addaudithook(_lore_no_network)
""")


@pytest.fixture(scope="session")
def no_net_dir(tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("nonet")
    (d / "sitecustomize.py").write_text(NO_NET)
    return str(d)


@pytest.fixture(scope="session")
def enterprise_kb(tmp_path_factory, no_net_dir, onnx_cache) -> tuple[Path, subprocess.CompletedProcess]:
    """The whole shared enterprise corpus ingested once by `lore ingest`, with the network unreachable.

    Read-only use: the CLI test checks the ingest itself, tests/evals/test_datasets.py the QA sets against it.
    """
    d = tmp_path_factory.mktemp("enterprise-kb") / "kb"
    env = {**os.environ, "PYTHONPATH": no_net_dir}
    env.pop("HF_HUB_OFFLINE", None)  # Lore must set it itself
    r = subprocess.run([LORE, "ingest", *map(str, ENTERPRISE_DIRS), "--data-dir", str(d), "--json"], cwd=REPO,
                       capture_output=True, text=True, env=env, timeout=900)
    return d, r


@pytest.fixture(scope="session")
def api_env(tmp_path_factory, onnx_cache):
    """The sample knowledge base behind a running Lore service, with a reader, an HR reader and an admin key.

    Shared by the API, web page and OpenAI-client tests: read-only use only (tests that upload, delete
    or ingest start their own service).
    """
    from api.settings import Settings
    from tests.support.live import LiveServer, ingest

    data = tmp_path_factory.mktemp("api-kb")
    settings = Settings(data_dir=data)
    ingest(settings, [SAMPLES])
    with LiveServer(settings) as srv:
        keys = srv.services.keys
        srv.keys = {"reader": keys.create("sam", "", "reader")[0],
                    "hr": keys.create("ana", "hr", "reader")[0],
                    "admin": keys.create("root", "", "admin")[0]}
        yield srv


@pytest.fixture(scope="session")
def browser():
    """Headless Debian chromium driven by Playwright, one per test session (the web page tests)."""
    from playwright.sync_api import sync_playwright

    exe = shutil.which("chromium")
    if exe is None:
        pytest.fail("Debian chromium is not installed, so the web page cannot be tested: run `make browser`",
                    pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        yield b
        b.close()


def pytest_terminal_summary(terminalreporter) -> None:
    """How many attack variants each route received in this run (tests/security/test_replay.py)."""
    replay = sys.modules.get("tests.security.test_replay") or sys.modules.get("test_replay")
    sent = getattr(replay, "SENT", None)
    if not sent:
        return
    terminalreporter.section("security replay: variants sent per route")
    for route, n in sorted(sent.items()):
        terminalreporter.write_line(f"{n:6d}  {route}")
    terminalreporter.write_line(f"{sum(sent.values()):6d}  in all")
