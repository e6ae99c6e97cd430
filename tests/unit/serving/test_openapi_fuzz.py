"""Schemathesis generates requests from the server's OpenAPI document and sends them to a real server:
none may get a 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from serving_helpers import LiveServer, start_server  # type: ignore[import-not-found]
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import loopml.registry as reg
from loopml.config import Settings

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given  # noqa: E402
from hypothesis import settings as hsettings  # noqa: E402


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = Settings.for_dir(tmp_path_factory.mktemp("fuzz"))
    X, y = load_iris(return_X_y=True, as_frame=True)
    mv = reg.register(LogisticRegression(max_iter=2000).fit(X, y), "iris", input_example=X.head(), settings=settings)
    server = start_server(settings, model_uri=mv.uri)
    yield server
    server.stop()


def test_no_generated_request_gets_a_server_error(live: LiveServer) -> None:
    schema = schemathesis.openapi.from_url(live.url + "/openapi.json")
    seen: dict[str, set[int]] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10

    for op in operations:
        @given(case=op.as_strategy())
        @hsettings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call(case: Any) -> None:
            label = case.operation.label
            response = case.call(base_url=live.url, timeout=30)
            seen.setdefault(label, set()).add(response.status_code)
            assert response.status_code < 500, f"{label}: {response.status_code} {response.text[:500]}"

        call()
    assert any(code == 200 for codes in seen.values() for code in codes)
    assert any(400 <= code < 500 for codes in seen.values() for code in codes)
