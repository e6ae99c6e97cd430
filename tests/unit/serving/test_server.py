"""The prediction server over real HTTP on 127.0.0.1: protocols, bad input, metrics, the prediction log."""

from __future__ import annotations

import json
import math
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from serving_helpers import LiveServer, serve_process  # type: ignore[import-not-found]
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.linear_model import LogisticRegression

import loopml.registry as reg
from loopml.config import Settings
from loopml.serving.app import ServeOptions
from loopml.serving.batching import BatchConfig
from loopml.serving.predlog import read_feedback, read_predictions, read_scored


@pytest.fixture
def cancer(settings: Settings) -> tuple[pd.DataFrame, LogisticRegression]:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=5000).fit(X, y)
    mv = reg.register(model, "cancer", input_example=X.head(5), settings=settings)
    reg.set_alias("cancer", "champion", mv.version, settings=settings)
    return X, model


def split(X: pd.DataFrame) -> dict[str, Any]:
    return {"dataframe_split": {"columns": list(X.columns), "data": X.to_numpy().tolist()}}


def test_every_mlflow_input_shape_and_csv_give_the_models_predictions(serve: Callable[..., LiveServer],
                                                                      cancer: tuple[pd.DataFrame, Any]) -> None:
    X, model = cancer
    live = serve(model_uri="models:/cancer@champion")
    rows = X.iloc[10:17]
    want = model.predict(rows).tolist()
    shuffled = rows[list(reversed(rows.columns))]
    bodies: list[dict[str, Any]] = [
        split(rows),
        split(shuffled),  # columns in another order
        {"dataframe_records": rows.to_dict(orient="records")},
        {"instances": rows.to_dict(orient="records")},
        {"instances": rows.to_numpy().tolist()},
        {"inputs": rows.to_dict(orient="list")},
    ]
    with live.client() as c:
        for body in bodies:
            r = c.post("/invocations", json=body)
            assert r.status_code == 200, r.text
            assert r.json()["predictions"] == want
            assert len(r.headers["x-request-id"]) == 32 and r.headers["x-loopml-model"] == "models:/cancer/1"
        r = c.post("/invocations", content=rows.to_csv(index=False), headers={"Content-Type": "text/csv"})
        assert r.status_code == 200 and r.json()["predictions"] == want
        r = c.post("/invocations", json=split(rows.head(1)), headers={"X-Request-ID": "client-id-7"})
        assert r.headers["x-request-id"] == "client-id-7"


def test_open_inference_protocol_v2(serve: Callable[..., LiveServer], cancer: tuple[pd.DataFrame, Any]) -> None:
    X, model = cancer
    live = serve(model_uri="models:/cancer/1")
    rows = X.iloc[:4]
    with live.client() as c:
        assert c.get("/v2/health/live").json() == {"live": True}
        assert c.get("/v2/health/ready").json() == {"ready": True}
        meta = c.get("/v2/models/cancer").json()
        assert meta["versions"] == ["1"] and [i["name"] for i in meta["inputs"]] == list(X.columns)
        assert meta["inputs"][0]["datatype"] == "FP64"
        columnar = {"id": "abc", "inputs": [{"name": col, "shape": [4], "datatype": "FP64", "data": rows[col].tolist()}
                                            for col in X.columns]}
        r = c.post("/v2/models/cancer/infer", json=columnar)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["id"] == "abc" and out["model_version"] == "1"
        assert out["outputs"][0]["data"] == model.predict(rows).tolist() and out["outputs"][0]["shape"] == [4]
        tensor = {"inputs": [{"name": "input-0", "shape": [4, 30], "datatype": "FP64",
                              "data": rows.to_numpy().ravel().tolist()}]}
        assert c.post("/v2/models/cancer/infer", json=tensor).json()["outputs"][0]["data"] == model.predict(rows).tolist()
        r = c.post("/v2/models/nope/infer", json=tensor)
        assert r.status_code == 404 and "nope" in r.json()["message"]
        assert c.get("/v2/models/nope").status_code == 404


@pytest.mark.parametrize(("body", "status", "needle"), [
    (b"{not json", 400, "not valid JSON"),
    (b'{"dataframe_split": {"columns": ["a"], "data": [[NaN]]}}', 400, "NaN"),
    (b"[]", 400, "JSON object"),
    (b'{"dataframe_split": {"columns": [], "data": []}}', 400, "empty batch"),
    (b'{"instances": [], "inputs": []}', 400, "exactly one"),
    (b'{"dataframe_records": [{"mean radius": 1}]}', 422, "missing column(s) 'mean texture'"),
])
def test_malformed_requests_get_a_4xx_naming_the_problem(serve: Callable[..., LiveServer],
                                                         cancer: tuple[pd.DataFrame, Any], body: bytes, status: int,
                                                         needle: str) -> None:
    live = serve(model_uri="models:/cancer/1")
    with live.client() as c:
        r = c.post("/invocations", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    assert needle in r.json()["message"]
    assert r.json()["error_code"]


def test_wrong_types_missing_extra_columns_and_nan_are_named(serve: Callable[..., LiveServer],
                                                             cancer: tuple[pd.DataFrame, Any]) -> None:
    X, _ = cancer
    live = serve(model_uri="models:/cancer/1")
    rows = X.head(3)
    with live.client() as c:
        bad_type = split(rows)
        bad_type["dataframe_split"]["data"][1][2] = "lots"
        r = c.post("/invocations", json=bad_type)
        assert r.status_code == 422
        assert "column 'mean perimeter' expects float but row 1 has 'lots'" in r.json()["message"]
        extra = rows.assign(patient_id=[1, 2, 3])
        r = c.post("/invocations", json=split(extra))
        assert r.status_code == 422 and "unexpected column(s) 'patient_id'" in r.json()["message"]
        missing = rows.drop(columns=["worst area"])
        r = c.post("/invocations", json={"dataframe_records": missing.to_dict(orient="records")})
        assert r.status_code == 422 and "missing column(s) 'worst area'" in r.json()["message"]
        with_null = split(rows)
        with_null["dataframe_split"]["data"][2][0] = None
        r = c.post("/invocations", json=with_null)
        assert r.status_code == 422
        assert "'mean radius' is missing (null/NaN) in 1 row(s), first row 2" in r.json()["message"]
        ragged = split(rows)
        ragged["dataframe_split"]["data"][0] = ragged["dataframe_split"]["data"][0][:5]
        r = c.post("/invocations", json=ragged)
        assert r.status_code == 422 and "row 0 has 5 values, expected 30" in r.json()["message"]
        r = c.post("/invocations", content=b"a,b\n1,2\n", headers={"Content-Type": "application/xml"})
        assert r.status_code == 400 and "application/xml" in r.json()["message"]
        # the server still answers correctly afterwards
        assert c.post("/invocations", json=split(rows)).status_code == 200


def test_a_50_mb_payload_gets_413_and_the_server_carries_on(serve: Callable[..., LiveServer],
                                                           cancer: tuple[pd.DataFrame, Any]) -> None:
    X, _ = cancer
    live = serve(model_uri="models:/cancer/1")
    huge = b'{"instances": [' + b",".join([b"[" + b",".join([b"1.0"] * 30) + b"]"] * 430_000) + b"]}"
    assert len(huge) > 50 * 1024 * 1024
    with live.client() as c:
        r = c.post("/invocations", content=huge, headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and "limit" in r.json()["message"]
        assert c.post("/invocations", json=split(X.head(1))).status_code == 200


def test_metrics_count_requests_errors_latency_batches_and_the_model(serve: Callable[..., LiveServer],
                                                                     cancer: tuple[pd.DataFrame, Any]) -> None:
    X, _ = cancer
    live = serve(model_uri="models:/cancer/1")
    with live.client() as c:
        for _ in range(3):
            c.post("/invocations", json=split(X.head(2)))
        c.post("/invocations", content=b"{oops", headers={"Content-Type": "application/json"})
        text = c.get("/metrics").text
    assert 'loopml_requests_total{code="200",deployment="cancer",endpoint="invocations"} 3.0' in text
    assert 'loopml_request_errors_total{deployment="cancer",endpoint="invocations",error_code="INVALID_INPUT"} 1.0' in text
    assert 'loopml_request_latency_seconds_count{deployment="cancer",endpoint="invocations"} 4.0' in text
    assert 'loopml_batch_rows_sum{model="cancer",version="1"} 6.0' in text
    assert 'loopml_model_info{deployment="cancer",model="cancer",role="live",variant="primary",version="1",weight="100"} 1.0' in text
    assert "loopml_requests_in_flight 0.0" in text


def test_concurrent_clients_are_batched_without_errors(serve: Callable[..., LiveServer],
                                                       cancer: tuple[pd.DataFrame, Any]) -> None:
    X, model = cancer
    live = serve(model_uri="models:/cancer/1",
                 options=ServeOptions(open_mode=True, batch=BatchConfig(max_wait_ms=2.0), flush_interval=0.2))
    want = model.predict(X).tolist()

    def client(k: int) -> list[tuple[int, int, int]]:
        out = []
        with live.client() as c:
            for i in range(k * 7 % 50, k * 7 % 50 + 60):
                r = c.post("/invocations", json=split(X.iloc[[i]]))
                out.append((r.status_code, r.json()["predictions"][0] if r.status_code == 200 else -1, want[i]))
        return out

    with ThreadPoolExecutor(16) as pool:
        results = [x for part in pool.map(client, range(16)) for x in part]
    assert len(results) == 960
    assert all(status == 200 for status, _, _ in results)
    assert all(got == expected for _, got, expected in results)
    with live.client() as c:
        text = c.get("/metrics").text
    calls = float(next(line.split()[-1] for line in text.splitlines()
                       if line.startswith('loopml_batch_requests_count{model="cancer"')))
    assert calls < 960  # some requests shared a model call


def test_prediction_log_and_feedback_by_request_id(serve: Callable[..., LiveServer], settings: Settings,
                                                   cancer: tuple[pd.DataFrame, Any]) -> None:
    X, model = cancer
    live = serve(model_uri="models:/cancer/1")
    ids = []
    with live.client() as c:
        for i in range(5):
            r = c.post("/invocations", json=split(X.iloc[i:i + 2]))
            ids.append(r.headers["x-request-id"])
        assert c.post("/feedback", json={"request_id": ids[0], "labels": [1, 0]}).json() == {"stored": 2}
        assert c.post("/feedback", json=[{"request_id": ids[1], "label": 1}]).status_code == 200
        for bad, needle in [({"label": 1}, "request_id"), ({"request_id": "x"}, "exactly one"),
                            ({"request_id": "x", "labels": []}, "non-empty"), ([], "empty list"),
                            ({"request_id": "x", "label": {"a": 1}}, "a label must be")]:
            r = c.post("/feedback", json=bad)
            assert r.status_code == 400 and needle in r.json()["message"], r.text
    assert live.state.predlog is not None
    live.state.predlog.flush()
    preds = read_predictions("cancer", settings=settings)
    assert preds.num_rows == 10
    assert set(preds["request_id"].to_pylist()) == set(ids)
    inputs = preds.column("inputs").flatten()
    assert len(inputs) == 30 and preds.schema.field("inputs").type.num_fields == 30
    first = preds.filter(np.array([rid == ids[2] for rid in preds["request_id"].to_pylist()]))
    assert first["prediction"].to_pylist() == model.predict(X.iloc[2:4]).tolist()
    assert first.column("inputs").flatten()[0].to_pylist() == X["mean radius"].iloc[2:4].tolist()
    assert set(preds["role"].to_pylist()) == {"live"} and set(preds["version"].to_pylist()) == {1}
    assert read_feedback("cancer", settings=settings).num_rows == 3
    scored = read_scored("cancer", settings=settings).to_pandas()
    labelled = scored.dropna(subset=["label"])
    assert len(labelled) == 3 and set(labelled["request_id"]) == {ids[0], ids[1]}


def test_a_clean_shutdown_loses_no_logged_prediction(tmp_path: Path, settings: Settings,
                                                     cancer: tuple[pd.DataFrame, Any]) -> None:
    X, _ = cancer
    # a long flush interval: everything is still buffered when the signal arrives
    server = serve_process(settings.project_dir, "models:/cancer/1", "--open", "--flush-interval", "3600")
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            ids = [c.post("/invocations", json=split(X.iloc[i:i + 3])).headers["x-request-id"] for i in range(40)]
            c.post("/feedback", json={"request_id": ids[0], "labels": [0, 1, 1]})
    finally:
        code = server.stop(signal.SIGTERM)
    assert code in (0, -signal.SIGTERM), server.log.read_text()[-2000:]
    preds = read_predictions("cancer", settings=settings)
    assert preds.num_rows == 120 and set(preds["request_id"].to_pylist()) == set(ids)
    assert read_feedback("cancer", settings=settings).num_rows == 3


def test_unknown_model_or_deployment_fails_at_start_with_its_name(settings: Settings,
                                                                  cancer: tuple[pd.DataFrame, Any]) -> None:
    for args, needle in [(("models:/nothing@champion", "--open"), "nothing"),
                         (("models:/cancer/9", "--open"), "9"),
                         (("--deployment", "ghost", "--open"), "ghost")]:
        with pytest.raises(RuntimeError, match=needle) as info:
            serve_process(settings.project_dir, *args)
        assert "Traceback" not in str(info.value)


def test_serving_without_keys_needs_open_mode(settings: Settings, cancer: tuple[pd.DataFrame, Any]) -> None:
    with pytest.raises(RuntimeError, match="no API key exists") as info:
        serve_process(settings.project_dir, "models:/cancer/1")
    assert "--open" in str(info.value) and "Traceback" not in str(info.value)


def test_api_keys_and_roles(serve: Callable[..., LiveServer], settings: Settings,
                            cancer: tuple[pd.DataFrame, Any]) -> None:
    from loopml.serving.auth import get_keys

    X, _ = cancer
    keys = get_keys(settings)
    _, predict_key = keys.create("app", roles=["predict"])
    _, admin_key = keys.create("ops", roles=["admin"])
    live = serve(model_uri="models:/cancer/1", options=ServeOptions(open_mode=False))
    with live.client() as c:
        assert c.post("/invocations", json=split(X.head(1))).status_code == 401
        r = c.post("/invocations", json=split(X.head(1)), headers={"Authorization": "Bearer lml_wrong"})
        assert r.status_code == 401 and "lml_wrong" not in r.text or r.status_code == 401
        ok = c.post("/invocations", json=split(X.head(1)), headers={"Authorization": f"Bearer {predict_key}"})
        assert ok.status_code == 200
        assert c.post("/invocations", json=split(X.head(1)), headers={"X-API-Key": admin_key}).status_code == 200
        r = c.get("/admin/deployment", headers={"X-API-Key": predict_key})
        assert r.status_code == 403 and "admin" in r.json()["message"]
        assert c.get("/admin/deployment", headers={"X-API-Key": admin_key}).json()["revision"] == 1
        assert c.get("/v2/health/ready").status_code == 200  # probes need no key
        assert c.get("/metrics").status_code == 200


def test_an_alias_move_is_picked_up_without_a_restart(serve: Callable[..., LiveServer], settings: Settings,
                                                      cancer: tuple[pd.DataFrame, Any]) -> None:
    X, _ = cancer
    flipped = LogisticRegression(max_iter=5000).fit(X, 1 - load_breast_cancer().target)
    mv2 = reg.register(flipped, "cancer", input_example=X.head(5), settings=settings)
    live = serve(model_uri="models:/cancer@champion")
    with live.client() as c:
        assert c.post("/invocations", json=split(X.head(1))).headers["x-loopml-model"] == "models:/cancer/1"
        reg.set_alias("cancer", "champion", mv2.version, settings=settings)
        deadline = time.monotonic() + 5
        while c.post("/invocations", json=split(X.head(1))).headers["x-loopml-model"] != "models:/cancer/2":
            assert time.monotonic() < deadline, "the alias move was not picked up"
            time.sleep(0.05)


def test_a_model_that_needs_a_dataframe_and_string_columns(serve: Callable[..., LiveServer], settings: Settings) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    iris = load_iris(as_frame=True)
    X = iris.data.assign(colour=np.where(iris.target == 0, "red", "blue"))
    pipe = make_pipeline(ColumnTransformer([("cat", OneHotEncoder(), ["colour"])], remainder="passthrough"),
                         LogisticRegression(max_iter=2000)).fit(X, iris.target)
    reg.register(pipe, "flowers", input_example=X.head(5), settings=settings)
    live = serve(model_uri="models:/flowers/1")
    rows = X.iloc[[0, 60, 120]]
    with live.client() as c:
        r = c.post("/invocations", json={"dataframe_records": rows.to_dict(orient="records")})
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == pipe.predict(rows).tolist()
        bad = rows.assign(colour=[1, 2, 3])
        r = c.post("/invocations", json={"dataframe_records": bad.to_dict(orient="records")})
        assert r.status_code == 422 and "colour" in r.json()["message"]


def test_nan_in_a_nullable_column_reaches_the_model(serve: Callable[..., LiveServer], settings: Settings) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = X.iloc[:, :4].copy()
    X.iloc[::7, 0] = np.nan
    model = HistGradientBoostingClassifier(max_iter=20).fit(X, y)
    reg.register(model, "gaps", input_example=X.head(10), settings=settings)  # row 0 and 7 have a gap
    live = serve(model_uri="models:/gaps/1")
    rows = X.iloc[[0, 1]]
    body = {"dataframe_split": {"columns": list(X.columns),
                                "data": [[None if isinstance(v, float) and math.isnan(v) else v for v in r]
                                         for r in rows.to_numpy().tolist()]}}
    with live.client() as c:
        r = c.post("/invocations", content=json.dumps(body), headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == model.predict(rows).tolist()


def test_a_data_schema_refuses_implausible_values(serve: Callable[..., LiveServer],
                                                  cancer: tuple[pd.DataFrame, Any]) -> None:
    import pyarrow as pa

    from loopml.data.profile import profile_table
    from loopml.data.schema import infer_schema

    X, model = cancer
    schema = infer_schema(profile_table(pa.Table.from_pandas(X, preserve_index=False)))
    live = serve(model_uri="models:/cancer/1", options=ServeOptions(open_mode=True, data_schema=schema))
    with live.client() as c:
        assert c.post("/invocations", json=split(X.head(3))).json()["predictions"] == model.predict(X.head(3)).tolist()
        odd = X.head(3).copy()
        odd.iloc[1, 0] = 1000.0  # mean radius is 6.9..28.1 in the training data
        r = c.post("/invocations", json=split(odd))
        assert r.status_code == 422
        assert "breaks the data schema" in r.json()["message"] and "'mean radius' is outside" in r.json()["message"]
        assert "first row 1" in r.json()["message"]


def test_failed_requests_go_to_the_error_stream(serve: Callable[..., LiveServer], settings: Settings,
                                                cancer: tuple[pd.DataFrame, Any]) -> None:
    from loopml.serving.predlog import read_errors

    X, _ = cancer
    live = serve(model_uri="models:/cancer/1")
    with live.client() as c:
        c.post("/invocations", json=split(X.head(2)))
        c.post("/invocations", content=b"{broken", headers={"Content-Type": "application/json"})
        c.post("/invocations", json={"dataframe_records": [{"x": 1}]})
    assert live.state.predlog is not None
    live.state.predlog.flush()
    errors = read_errors("cancer", settings=settings).to_pylist()
    assert [(e["status"], e["error_code"]) for e in errors] == [(400, "INVALID_INPUT"), (422, "SIGNATURE_MISMATCH")]
    assert all(e["endpoint"] == "invocations" and e["latency_ms"] > 0 for e in errors)
