"""Value handling without a database: params, metric flags, dataset digests, page tokens."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopml.errors import InvalidInputError, InvalidParamError
from loopml.tracking._sql import decode_page_token, encode_page_token
from loopml.tracking.models import Metric, Run, RunStatus
from loopml.tracking.service import MAX_PARAM_LENGTH, dataset_ref, encode_param


@pytest.mark.parametrize(
    ("value", "stored", "kind"),
    [
        ("rf", "rf", "str"),
        (3, "3", "json"),
        (0.5, "0.5", "json"),
        (True, "true", "json"),
        (None, "null", "json"),
        ([1, "a"], '[1, "a"]', "json"),
        ({"b": 1, "a": 2}, '{"a": 2, "b": 1}', "json"),
        (np.int64(7), "7", "json"),
        (np.float32(0.5), "0.5", "json"),
        (Path("/data/x.csv"), "/data/x.csv", "str"),
    ],
)
def test_encode_param(value: object, stored: str, kind: str) -> None:
    assert encode_param("k", value) == ("k", stored, kind)


@pytest.mark.parametrize("value", [object(), {1, 2}, b"bytes", {"nested": object()}])
def test_unstorable_param(value: object) -> None:
    with pytest.raises(InvalidParamError) as err:
        encode_param("k", value)
    assert "'k'" in str(err.value) and type(value).__name__ in str(err.value)


def test_too_long_param() -> None:
    encode_param("k", "x" * MAX_PARAM_LENGTH)
    with pytest.raises(InvalidParamError, match="artifact instead"):
        encode_param("k", "x" * (MAX_PARAM_LENGTH + 1))


@pytest.mark.parametrize("key", ["", None, 3, "k" * 251])
def test_bad_param_key(key: object) -> None:
    with pytest.raises(InvalidInputError, match="param key"):
        encode_param(key, 1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "flag"),
    [(1.5, None), (float("nan"), "nan"), (float("inf"), "inf"), (float("-inf"), "-inf"), (0.0, None)],
)
def test_metric_flag(value: float, flag: str | None) -> None:
    assert Metric("m", value, 0, 0).flag == flag


def test_run_helpers() -> None:
    run = Run(
        id="r", experiment_id=1, experiment="e", name=None, status=RunStatus.FINISHED, start_time=1000,
        end_time=1500, parent_run_id=None, user=None, host=None, git_commit=None, git_dirty=None, system={},
        metrics={"acc": Metric("acc", 0.9, 3, 1200)},
    )
    assert run.duration_ms == 500
    assert run.metric("acc") == 0.9
    assert run.metric("missing") is None
    assert RunStatus.RUNNING.terminal is False
    assert all(s.terminal for s in (RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED))


def test_dataset_ref_of_a_file(tmp_path: Path) -> None:
    content = b"a,b\n1,2\n3,4\n"
    f = tmp_path / "train.csv"
    f.write_bytes(content)
    ref = dataset_ref(f, context="training")
    assert ref.name == "train"
    assert ref.digest == hashlib.sha256(content).hexdigest()
    assert ref.path == str(f.resolve())
    assert ref.context == "training"
    assert dataset_ref(str(f), name="given").name == "given"


def test_dataset_ref_of_a_dataframe() -> None:
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    ref = dataset_ref(df)
    assert ref.name == "dataframe"
    assert ref.num_rows == 3
    assert ref.schema is not None and set(ref.schema) == {"a", "b"} and ref.schema["a"] == "int64"
    assert dataset_ref(df.copy()).digest == ref.digest
    assert dataset_ref(df.set_axis([10, 11, 12])).digest == ref.digest  # the index is not content
    assert dataset_ref(df.assign(a=[1, 2, 4])).digest != ref.digest
    assert dataset_ref(df.rename(columns={"b": "c"})).digest != ref.digest


def test_dataset_ref_rejects_other_things(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="not a file"):
        dataset_ref(tmp_path / "missing.csv")
    with pytest.raises(InvalidInputError, match="list"):
        dataset_ref([1, 2, 3])


@pytest.mark.parametrize("offset", [0, 1, 999])
def test_page_token_round_trip(offset: int) -> None:
    assert decode_page_token(encode_page_token(offset)) == offset


@pytest.mark.parametrize("token", ["garbage", "eyJvZmZzZXQiOiAtMX0=", "e30="])  # -1 offset, {}
def test_foreign_page_token(token: str) -> None:
    with pytest.raises(InvalidInputError, match="page token"):
        decode_page_token(token)
