"""Edge schemas are views of the core types (issue 17): every field of a core dataclass is shown or excluded
on purpose, every shown field has the core's type, and the published OpenAPI says what the core types say."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

import pytest
from pydantic import AliasPath, BaseModel, TypeAdapter

import api.app  # noqa: F401 - registers every route's views
import api.mcp_server  # noqa: F401 - and the MCP tools' ones
from api.schemas import CitationOut, CoreView
from assistant.types import Answer, Citation, Status
from retriever.types import Hit


def views() -> list[type[CoreView]]:
    """Every CoreView the api package defines (subclasses of subclasses too)."""
    found, todo = [], list(CoreView.__subclasses__())
    while todo:
        v = todo.pop()
        todo.extend(v.__subclasses__())
        if v.__module__.startswith("api."):
            found.append(v)
    return sorted(set(found), key=lambda v: f"{v.__module__}.{v.__qualname__}")


def hints(core: Any) -> dict[str, Any]:
    return dict(core) if isinstance(core, dict) else typing.get_type_hints(core)


def _is_dc(t: Any) -> bool:
    return dataclasses.is_dataclass(t) and isinstance(t, type)


def source(view: type[CoreView], name: str) -> tuple[str, ...]:
    alias = view.model_fields[name].validation_alias
    if isinstance(alias, AliasPath):
        return tuple(str(p) for p in alias.path)
    return (alias,) if isinstance(alias, str) else (name,)


def _optional(t: Any) -> tuple[Any, bool]:
    if get_origin(t) in (Union, types.UnionType):
        rest = [a for a in get_args(t) if a is not type(None)]
        if len(rest) < len(get_args(t)):
            return (rest[0] if len(rest) == 1 else Union[tuple(rest)]), True
    return t, False


def mismatch(out: Any, core: Any) -> str | None:
    """Why an edge field typed `out` cannot show a core value typed `core` faithfully, or None."""
    if core is Any:
        return None
    out, out_opt = _optional(out)
    core, core_opt = _optional(core)
    if core_opt and not out_opt:
        return "the core value may be None, the edge's may not"
    if isinstance(out, type) and issubclass(out, CoreView):
        return None if out.core is core else f"{out.__name__} views {out.core}, the core holds {core}"
    if isinstance(out, type) and issubclass(out, BaseModel):  # a documented shape of a core dict
        return None if dict in (core, get_origin(core)) else f"{out.__name__} for a core {core}"
    o, c = get_origin(out), get_origin(core)
    if o is list and c in (list, tuple):
        item = get_args(core)[0]
        return mismatch(get_args(out)[0], item) if c is list or get_args(core)[1:] == (...,) else "a fixed tuple"
    if o is dict and core is dict:
        return None
    if o is Literal and core is str and all(isinstance(v, str) for v in get_args(out)):
        return None
    if o is Literal and c is Literal:
        return None if set(get_args(out)) <= set(get_args(core)) else "values the core does not have"
    want, got = TypeAdapter(core).json_schema(), TypeAdapter(out).json_schema()
    return None if want == got else f"edge {got} is not core {want}"


def problems(view: type[CoreView]) -> list[str]:
    """What makes `view` not a faithful view of its core type: fields neither shown nor excluded, fields read
    from nowhere, types that disagree, stale exclusions."""
    out, used = [], set()
    fields = {n: f for n, f in view.model_fields.items() if n not in view.computed}
    nested = {n for n in view.itself}
    for name, f in fields.items():
        if name in nested:  # a model of the object's own attributes, nested on the wire
            sub = typing.cast(type[BaseModel], f.annotation)
            for s, sf in sub.model_fields.items():
                out += [f"{name}.{s}: {w}" for w in [_check(hints(view.core), (s,), sf.annotation, used)] if w]
            continue
        why = _check(hints(view.core), source(view, name), f.annotation, used)
        if why:
            out.append(f"{name}: {why}")
    used |= set(view.computed)
    leaves = _leaves(hints(view.core), "", used)
    out += [f"core field {p} is neither shown nor in hidden" for p in sorted(leaves - used - set(view.hidden))]
    out += [f"hidden names {p}, which the core does not have" for p in sorted(set(view.hidden) - leaves)]
    return out


def _check(h: dict[str, Any], path: tuple[str, ...], annotation: Any, used: set[str]) -> str | None:
    t: Any = None
    for i, step in enumerate(path):
        if step not in h:
            return f"reads {'.'.join(path)}, which the core does not have"
        t = h[step]
        if i + 1 < len(path):
            if not _is_dc(t):
                return f"reads into {step}, which is no dataclass"
            h = typing.get_type_hints(t)
    used.add(".".join(path))
    return mismatch(annotation, t)


def _leaves(h: dict[str, Any], prefix: str, used: set[str]) -> set[str]:
    got = set()
    for name, t in h.items():
        p = prefix + name
        if _is_dc(t) and any(u.startswith(p + ".") for u in used):
            got |= _leaves(typing.get_type_hints(t), p + ".", used)
        else:
            got.add(p)
    return got


@pytest.mark.parametrize("view", views(), ids=lambda v: v.__qualname__)
def test_every_core_field_is_shown_or_excluded_with_its_type(view):
    assert problems(view) == []
    # an alias names where a value comes from, never the wire: MCP publishes validation-mode schemas
    names = {m: list(view.model_json_schema(mode=m)["properties"]) for m in ("validation", "serialization")}
    assert names["validation"] == names["serialization"]


def test_the_edge_views_the_core_types_it_should():
    names = {v.__name__: v.core for v in views()}
    assert names["AnswerOut"] is Answer and names["HitOut"] is Hit and names["CitationOut"] is Citation
    assert {"SearchOut", "DocumentOut", "ChunkOut", "PassageOut", "SourceOut", "SyncReportOut", "ReportOut",
            "AuditRecordOut", "AdminActionOut", "KeyInfoOut", "CallerOut"} <= set(names)


def test_a_field_added_to_a_core_type_fails_until_shown_or_hidden():
    grown = dataclasses.make_dataclass("Grown", [*((f.name, f.type) for f in dataclasses.fields(Citation)),
                                                 ("reviewer", "str")], frozen=True)
    grown.__module__ = Citation.__module__  # its field types resolve where Citation's do

    class GrownOut(CitationOut):  # CitationOut's fields, over a Citation that grew one
        core = grown

    assert problems(GrownOut) == ["core field reviewer is neither shown nor in hidden"]
    GrownOut.hidden = {"reviewer": "internal"}
    assert problems(GrownOut) == []

    class Mistyped(GrownOut):
        page: int  # type: ignore[assignment] - the core's may be None

    assert problems(Mistyped) == ["page: the core value may be None, the edge's may not"]


@pytest.fixture(scope="module")
def spec() -> dict:
    from api.app import create_app
    from api.settings import Settings

    return create_app(Settings(data_dir="/nonexistent-lore-spec-only")).openapi()


def _props(spec: dict, name: str) -> dict:
    return spec["components"]["schemas"][name]["properties"]


def test_openapi_citations_and_answers_are_what_the_core_types_say(spec):
    cite = _props(spec, "CitationOut")
    assert list(cite) == [f.name for f in dataclasses.fields(Citation)]
    assert cite["section"]["type"] == "array" and cite["section"]["items"] == {"type": "string"}
    assert {"type": "null"} in cite["page"]["anyOf"] and {"type": "integer"} in cite["page"]["anyOf"]
    assert cite["quote"]["description"] == "a verified substring of the passage"
    answer = _props(spec, "AnswerOut")
    renamed = {"timings_ms": "timings"}  # the wire's name
    assert set(answer) == {"id"} | {renamed.get(f.name, f.name) for f in dataclasses.fields(Answer)}
    assert answer["status"]["enum"] == list(get_args(Status))
    assert answer["citations"]["items"] == {"$ref": "#/components/schemas/CitationOut"}
    assert answer["hits"]["items"] == {"$ref": "#/components/schemas/HitOut"}


def test_openapi_hits_are_a_hit_flattened(spec):
    hit = _props(spec, "HitOut")
    stages = _props(spec, "StagesOut")
    own = {f.name for f in dataclasses.fields(Hit)} - {"chunk", "doc"}
    assert own - set(stages) <= set(hit) and set(stages) == own - {"rank", "score", "alternatives"}
    assert {"chunk_id", "doc_id", "title", "uri", "section", "page_start", "page_end", "start", "end",
            "text"} <= set(hit) and "acl" not in hit
    assert hit["text"]["description"] == "the passage" and hit["score"]["type"] == "number"


def test_the_edge_json_of_answers_and_searches_is_the_cores_own(tmp_path):
    """AnswerOut and SearchOut give the JSON of the core's to_dict (kept for evals, the LangChain retriever's
    metadata and the Slack bot) for the same answer and search: the two cannot drift apart."""
    from api.schemas import AnswerOut, SearchOut
    from api.settings import Settings
    from api.wiring import build_assistant
    from ingest.access import Principal
    from tests.support import SAMPLES
    from tests.support.live import ingest

    s = Settings(data_dir=tmp_path / "kb")
    ingest(s, [SAMPLES])
    assistant = build_assistant(s)
    ans = assistant.answer("How many PTO hours can I carry over?", Principal())
    assert ans.citations and ans.hits
    assert AnswerOut.of(ans, id="q1").model_dump(mode="json") == json.loads(json.dumps(ans.to_dict(id="q1")))
    res = assistant.retriever.search("payments api rate limit", Principal(), None, 5)
    assert SearchOut.of(res).model_dump(mode="json") == json.loads(json.dumps(res.to_dict()))
