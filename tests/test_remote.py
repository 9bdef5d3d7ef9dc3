"""DVC remotes: the default local-folder remote and an S3-compatible one (moto on 127.0.0.1) round-trip the data."""

from __future__ import annotations

import configparser
import shutil
from pathlib import Path

import pytest
from conftest import REPO, sh, tiny_repo

pytestmark = pytest.mark.slow

OUTPUTS = ("data/prepared", "data/split")  # what `prepare` and `split` wrote, hence what a pull must restore
# Only these two stages have run here: the later ones have no outputs to push, so name the target.
UPTO = ("--with-deps", "split")
SECRET = "not-a-real-secret-key"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Path:
    """A tiny repository with `prepare` and `split` run: enough DVC outputs to push and pull."""
    root = tiny_repo(tmp_path_factory.mktemp("remote"))
    sh("dvc", "repro", "split", cwd=root)
    return root


def wipe_cache_and_outputs(root: Path) -> None:
    shutil.rmtree(root / ".dvc" / "cache")
    for out in OUTPUTS:
        shutil.rmtree(root / out)


def assert_restored(root: Path) -> None:
    assert (root / "data/split/retained.csv").stat().st_size > 0
    assert "up to date" in sh("dvc", "status", *UPTO, cwd=root).stdout


def test_the_committed_config_has_a_local_default_remote_and_no_credentials():
    config = configparser.ConfigParser()
    config.read(REPO / ".dvc" / "config")
    assert config["core"]["remote"] == "local" and config["'remote \"local\"'"]["url"] == "../dvc-remote"
    text = (REPO / ".dvc" / "config").read_text().lower()
    assert not any(word in text for word in ("access_key", "secret", "password", "token", "credential"))
    ignored = sh("git", "check-ignore", "dvc-remote/files", ".dvc/config.local", cwd=REPO).stdout.split()
    assert ignored == ["dvc-remote/files", ".dvc/config.local"]  # neither the remote nor local secrets get committed


def test_push_wipe_pull_through_the_default_local_remote(pipeline):
    sh("dvc", "push", *UPTO, cwd=pipeline)
    assert any((pipeline / "dvc-remote").rglob("*")), "the default remote is <repo>/dvc-remote"
    wipe_cache_and_outputs(pipeline)
    assert "up to date" not in sh("dvc", "status", *UPTO, cwd=pipeline).stdout
    sh("dvc", "pull", *UPTO, cwd=pipeline)
    assert_restored(pipeline)


def test_push_wipe_pull_through_an_s3_compatible_server(pipeline, monkeypatch):
    import boto3
    from moto.server import ThreadedMotoServer

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)  # the credentials below come from .dvc/config.local only
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata probe (no network here)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key=SECRET)
        s3.create_bucket(Bucket="unlearn")

        sh("dvc", "remote", "add", "shared", "s3://unlearn/project", cwd=pipeline)
        for key, value in {"endpointurl": endpoint, "access_key_id": "testing",
                           "secret_access_key": SECRET}.items():
            sh("dvc", "remote", "modify", "--local", "shared", key, value, cwd=pipeline)
        committed = (pipeline / ".dvc" / "config").read_text()
        assert "s3://unlearn/project" in committed and SECRET not in committed and endpoint not in committed
        assert SECRET in (pipeline / ".dvc" / "config.local").read_text()
        assert sh("git", "check-ignore", "-q", ".dvc/config.local", cwd=pipeline).returncode == 0

        sh("dvc", "push", "-r", "shared", *UPTO, cwd=pipeline)
        stored = s3.list_objects_v2(Bucket="unlearn", Prefix="project/")
        assert stored["KeyCount"] > 0
        wipe_cache_and_outputs(pipeline)
        sh("dvc", "pull", "-r", "shared", *UPTO, cwd=pipeline)
        assert_restored(pipeline)
    finally:
        server.stop()
