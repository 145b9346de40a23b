"""Pod environment parsing for the trainer's store and the server."""

from __future__ import annotations

import pytest
from freshet_trainer.serve import ServeConfig, ServeConfigError
from freshet_trainer.store import StoreConfig, StoreConfigError, normalize_etag

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "id",
    "AWS_SECRET_ACCESS_KEY": "secret",
    "FRESHET_S3_BUCKET": "b",
}


@pytest.mark.parametrize(
    ("endpoint", "secure_env", "expected"),
    [
        ("minio.ml:9000", "false", ("minio.ml:9000", False)),
        ("minio.ml:9000", "", ("minio.ml:9000", True)),  # TLS unless told otherwise
        ("https://s3.example.com", "false", ("s3.example.com", True)),  # the URL decides
        ("http://127.0.0.1:8333/", "", ("127.0.0.1:8333", False)),
    ],
)
def test_store_endpoint_forms(endpoint: str, secure_env: str, expected: tuple[str, bool]) -> None:
    env = {**CREDENTIALS, "FRESHET_S3_ENDPOINT": endpoint, "FRESHET_S3_SECURE": secure_env}

    config = StoreConfig.from_env(env)

    assert (config.endpoint, config.secure) == expected
    assert "secret" not in repr(config)


@pytest.mark.parametrize(
    "env",
    [
        {"FRESHET_S3_ENDPOINT": "host:1"},  # no credentials, no bucket
        {**CREDENTIALS, "FRESHET_S3_ENDPOINT": "ftp://host"},
        {**CREDENTIALS, "FRESHET_S3_ENDPOINT": "http://host/bucket"},
        {**CREDENTIALS, "FRESHET_S3_ENDPOINT": "host:1", "FRESHET_S3_SECURE": "maybe"},
    ],
)
def test_unusable_store_environment_is_refused(env: dict[str, str]) -> None:
    with pytest.raises(StoreConfigError):
        StoreConfig.from_env(env)


def test_etags_compare_without_quotes() -> None:
    assert normalize_etag('"abc"') == normalize_etag("abc") == normalize_etag('W/"abc"')


def test_server_defaults_and_partial_model_configuration() -> None:
    assert ServeConfig.from_env({}) == ServeConfig(model=None)
    with pytest.raises(ServeConfigError, match="FRESHET_MODEL_SHA256"):
        ServeConfig.from_env({"FRESHET_MODEL_VERSION": "v2", "FRESHET_MODEL_KEY": "k"})
    with pytest.raises(ServeConfigError, match="PORT"):
        ServeConfig.from_env({"PORT": "http"})
