"""Property-based API fuzzing from the OpenAPI spec (schemathesis): no input ever makes the server fail.

Every operation is called with generated valid and invalid bodies, queries and paths, as an admin (so
admin-only operations run too) against a service of its own over real HTTP. The checks: never a 5xx,
the response matches the documented schema, status codes and content type are documented ones.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (content_type_conformance, not_a_server_error, response_schema_conformance,
                                 status_code_conformance)

from tests.support import SAMPLES


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory, onnx_cache):
    from api.settings import Settings
    from tests.support.live import LiveServer, ingest

    data = tmp_path_factory.mktemp("fuzz-kb")
    root = tmp_path_factory.mktemp("fuzz-root")
    settings = Settings(data_dir=data, server={"ingest_roots": [str(root)]})
    ingest(settings, [SAMPLES / "policies"])
    with LiveServer(settings) as srv:
        srv.admin_key = srv.services.keys.create("fuzzer", "qa", "admin")[0]
        yield srv


def _spec() -> dict:
    """The spec the service publishes at /openapi.json (built without starting anything; the test checks
    it is the one served)."""
    from api.app import create_app
    from api.settings import Settings

    return create_app(Settings(data_dir="/nonexistent-lore-spec-only")).openapi()


SPEC = _spec()
schema = schemathesis.openapi.from_dict(SPEC)


def test_the_fuzzed_spec_is_the_served_one(fuzz_server):
    import httpx

    assert httpx.get(fuzz_server.url + "/openapi.json").json() == SPEC


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_responses_match_the_spec(case, fuzz_server):
    case.call_and_validate(base_url=fuzz_server.url, headers={"Authorization": f"Bearer {fuzz_server.admin_key}"},
                           checks=[not_a_server_error, response_schema_conformance, status_code_conformance,
                                   content_type_conformance])
