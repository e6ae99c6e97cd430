"""Run artifacts on an S3-compatible store (a real moto HTTP server)."""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from pathlib import Path

import boto3
import pytest

from loopml.config import Settings
from loopml.errors import ArtifactCorruptedError, ArtifactNotFoundError
from loopml.storage import S3BlobStore, get_backend
from loopml.tracking import download_artifact, get_run, start_run

pytestmark = pytest.mark.integration


@pytest.fixture
def s3_settings(settings: Settings, s3_endpoint: str, s3_bucket: str) -> Settings:
    prefix = f"artifacts-{uuid.uuid4().hex}"
    return dataclasses.replace(settings, artifact_root=f"s3://{s3_bucket}/{prefix}", s3_endpoint_url=s3_endpoint)


def test_log_and_download_artifacts_on_s3(s3_settings: Settings, s3_bucket: str, tmp_path: Path) -> None:
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights" * 1000)
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "summary.txt").write_text("ok")

    with start_run("s3", settings=s3_settings) as run:
        run.log_artifact(model)
        run.log_artifact(folder, artifact_path="reports")
    assert isinstance(get_backend(s3_settings).blobs, S3BlobStore)

    stored = {a.path: a for a in get_run(run.id, settings=s3_settings).artifacts}
    assert sorted(stored) == ["model.bin", "reports/summary.txt"]
    assert stored["model.bin"].sha256 == hashlib.sha256(b"weights" * 1000).hexdigest()

    # the bytes really are in the bucket, under the run's prefix
    client = boto3.client(
        "s3", endpoint_url=s3_settings.s3_endpoint_url, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )
    prefix = s3_settings.artifact_root.removeprefix(f"s3://{s3_bucket}/")
    key = f"{prefix}/runs/{run.id}/artifacts/model.bin"
    assert client.get_object(Bucket=s3_bucket, Key=key)["Body"].read() == b"weights" * 1000

    dest = download_artifact(run.id, "model.bin", tmp_path / "dl" / "model.bin", settings=s3_settings)
    assert dest.read_bytes() == b"weights" * 1000
    dest = download_artifact(run.id, "reports/summary.txt", tmp_path / "dl" / "summary.txt", settings=s3_settings)
    assert dest.read_text() == "ok"

    client.put_object(Bucket=s3_bucket, Key=key, Body=b"tampered")
    with pytest.raises(ArtifactCorruptedError):
        download_artifact(run.id, "model.bin", tmp_path / "dl2" / "model.bin", settings=s3_settings)
    assert not (tmp_path / "dl2" / "model.bin").exists()

    client.delete_object(Bucket=s3_bucket, Key=key)
    with pytest.raises(ArtifactNotFoundError):
        download_artifact(run.id, "model.bin", tmp_path / "dl3" / "model.bin", settings=s3_settings)
    client.close()
