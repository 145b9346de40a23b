"""Store Secret parsing and the state-root layout shared with the trainer."""

from __future__ import annotations

import base64

import pytest
from freshet.store_config import StoreSecretError, parse_store_secret
from freshet_contract.layout import StateLayout


def encoded(**values: str) -> dict[str, str]:
    return {key: base64.b64encode(value.encode()).decode() for key, value in values.items()}


REQUIRED = {
    "endpoint": "minio:9000",
    "bucket": "ml-data",
    "accessKeyID": "ak",
    "secretAccessKey": "sk",
}


@pytest.mark.parametrize(
    ("extra", "secure", "region"),
    [
        ({}, True, None),
        ({"secure": "false"}, False, None),
        ({"secure": " TRUE\n"}, True, None),
        ({"region": "eu-west-1"}, True, "eu-west-1"),
        ({"region": ""}, True, None),
    ],
)
def test_parse_store_secret(extra: dict[str, str], secure: bool, region: str | None) -> None:
    config = parse_store_secret("ml-store", encoded(**REQUIRED, **extra))
    assert (config.endpoint, config.bucket, config.secure, config.region) == (
        "minio:9000",
        "ml-data",
        secure,
        region,
    )
    assert (config.access_key_id, config.secret_access_key) == ("ak", "sk")
    assert "sk" not in repr(config).replace("secret_name", "")


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({k: v for k, v in encoded(**REQUIRED).items() if k != "bucket"}, "lacks key.*bucket"),
        (encoded(**REQUIRED | {"secretAccessKey": ""}), "lacks key.*secretAccessKey"),
        (encoded(**REQUIRED, secure="yes"), 'secure must be "true" or "false"'),
        (encoded(**REQUIRED) | {"endpoint": "not base64!"}, "endpoint is not base64"),
    ],
)
def test_parse_store_secret_says_what_is_wrong(data: dict[str, str], error: str) -> None:
    with pytest.raises(StoreSecretError, match=error):
        parse_store_secret("ml-store", data)


LAYOUT = StateLayout.for_policy("ml", "spam-filter")


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (LAYOUT.root, "freshet/ml/spam-filter/"),
        (LAYOUT.run_spec_key("r1"), "freshet/ml/spam-filter/runs/r1/spec.json"),
        (LAYOUT.run_result_key("r1"), "freshet/ml/spam-filter/runs/r1/result.json"),
        (LAYOUT.model_prefix("v3"), "freshet/ml/spam-filter/models/v3/"),
        (LAYOUT.ledger_key, "freshet/ml/spam-filter/ledger.json"),
        (LAYOUT.quarantine_key("in/a.csv"), "freshet/ml/spam-filter/quarantine/in/a.csv"),
        (
            LAYOUT.quarantine_reason_key("in/a.csv"),
            "freshet/ml/spam-filter/quarantine/in/a.csv.reason.json",
        ),
    ],
)
def test_layout_matches_the_contract(key: str, expected: str) -> None:
    assert key == expected
