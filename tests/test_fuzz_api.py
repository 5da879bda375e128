"""Schemathesis generates requests from the app's own OpenAPI schema: no 5xx, and every error in the
documented shape ``{"error": {"type": str, "message": str}}``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from recommender.serving.http.app import create_app
from recommender.serving.service import Service
from recommender.settings import Settings
from tests.fakes import FakeEmbedder

KEY = "fuzz-key"
#: Examples per operation: a short run in CI; RECOMMENDER_FUZZ_EXAMPLES=500 for a long one.
EXAMPLES = int(os.environ.get("RECOMMENDER_FUZZ_EXAMPLES", "25"))


def documented_error_shape(ctx: Any, response: Any, case: Any) -> None:
    if response.status_code < 400:
        return
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"].get("type"), str) and isinstance(body["error"].get("message"), str), body


@pytest.mark.thorough
def test_no_server_errors(fake_index: Path, fake: FakeEmbedder) -> None:
    """Every operation of the schema, with and without the API key (schemathesis's strategies + Hypothesis).

    (schemathesis's pytest plug-in does not run under this pytest version, so the operations are driven here.)
    """
    service = Service(fake_index, embedder=fake, check_interval=0.02, autosave_seconds=0)
    service.load()
    app = create_app(service, Settings(api_key=KEY, max_body_bytes=100_000))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    calls = 0
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case: Any) -> None:
            nonlocal calls
            for headers in ({"Authorization": f"Bearer {KEY}"}, {}):
                case.call_and_validate(headers=headers, checks=[not_a_server_error, documented_error_shape])
                calls += 1

        run()
    service.close()
    assert calls > len(operations) * 2
