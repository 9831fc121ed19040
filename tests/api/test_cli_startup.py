"""The CLI starts fast because each command loads only what it uses (issue 16): checked in fresh processes.

A driver runs the real `lore` app and records `sys.modules` at exit. `lore --help` loads no settings, models
or stores; `lore search` and `lore ask` on the default ONNX backend load neither torch nor transformers
(the tokenizer is `tokenizers` alone); a keyword search needs no vector store and no model at all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support import LORE, REPO, SAMPLES

DRIVER = """
import json, sys
out = sys.argv.pop(1)
sys.argv[0] = "lore"
from api.cli import app
code = 0
try:
    app()
except SystemExit as exc:
    code = exc.code
with open(out, "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""
HEAVY = ("torch", "transformers", "sentence_transformers", "unstructured", "slack_sdk", "slack_bolt", "fastapi",
         "uvicorn", "matplotlib", "langchain_core", "openai", "ranx", "spacy", "scipy", "mcp")


def loaded(tmp_path, *args: str) -> set[str]:
    """Top-level packages a fresh `lore ARGS...` process imported (it must succeed)."""
    out = tmp_path / "modules.json"
    r = subprocess.run([sys.executable, "-c", DRIVER, str(out), *args], cwd=REPO, capture_output=True, text=True,
                       env=os.environ, timeout=300)
    got = json.loads(out.read_text())
    assert got["code"] in (0, None), (args, r.stderr[-2000:])
    return {m.partition(".")[0] for m in got["modules"]}


@pytest.fixture(scope="module")
def kb(tmp_path_factory) -> str:
    d = str(tmp_path_factory.mktemp("startup") / "kb")
    r = subprocess.run([LORE, "ingest", str(SAMPLES), "--data-dir", d], cwd=REPO, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return d


def test_help_loads_the_cli_only(tmp_path):
    mods = loaded(tmp_path, "--help")
    assert "typer" in mods
    assert not mods & {*HEAVY, "pydantic_settings", "numpy", "chromadb", "onnxruntime", "tokenizers", "api.settings"}


def test_search_and_ask_load_no_torch_or_transformers(tmp_path, kb):
    mods = loaded(tmp_path, "search", "how many PTO hours carry over", "--data-dir", kb)
    assert {"onnxruntime", "tokenizers", "chromadb"} <= mods  # the dense side: the model and the vector store
    assert not mods & set(HEAVY), mods & set(HEAVY)
    mods = loaded(tmp_path, "ask", "How many PTO hours can I carry over?", "--data-dir", kb)
    assert "onnxruntime" in mods and not mods & set(HEAVY), mods & set(HEAVY)


def test_keyword_search_needs_no_model_or_vector_store(tmp_path, kb):
    mods = loaded(tmp_path, "search", "PTO carry over", "--mode", "keyword", "--data-dir", kb)
    assert not mods & {*HEAVY, "chromadb", "onnxruntime", "tokenizers"}
