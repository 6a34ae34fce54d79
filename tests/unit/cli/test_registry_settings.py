"""The record format settings and lead_fields: a bad value is one line and exit 2."""

from __future__ import annotations

import pytest

from streamproc.settings import load_settings
from tests.unit.config_errors import config_show_error


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"STREAMPROC_LEAD_FIELDS": "lead=/id"}, "did you mean lead_id"),
        ({"STREAMPROC_LEAD_FIELDS": "email=contact..email"}, "empty key"),
        ({"STREAMPROC_LEAD_FIELDS": "email=/a/~2"}, "~0 or ~1"),
        ({"STREAMPROC_LEAD_FIELDS": "email"}, "field=path"),
        ({"STREAMPROC_LEAD_FIELDS": '{"email": '}, "JSON object"),
        ({"STREAMPROC_INPUT_FORMAT": "avro"}, "'json' or 'registry'"),
        ({"STREAMPROC_INPUT_FORMAT": "registry"}, "STREAMPROC_SCHEMA_REGISTRY_URL"),
        (
            {
                "STREAMPROC_OUTPUT_FORMAT": "registry",
                "STREAMPROC_SCHEMA_REGISTRY_URL": "http://registry:8081",
            },
            "input_format registry",
        ),
        (
            {
                "STREAMPROC_INPUT_FORMAT": "registry",
                "STREAMPROC_SCHEMA_REGISTRY_URL": "http://registry:8081",
                "STREAMPROC_PROVIDER_MODE": "clay",
                "STREAMPROC_CLAY_WEBHOOK_URLS": "http://clay.test/hook",
                "STREAMPROC_CLAY_CALLBACK_SECRET": "s",
            },
            "plain JSON",
        ),
    ],
)
def test_a_bad_format_or_mapping_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    says: str,
) -> None:
    """Each names what is wrong and how to put it right, without a traceback."""
    err = config_show_error(monkeypatch, capsys, env)
    assert says in err


def test_lead_fields_as_pairs_json_or_a_toml_table_are_the_same() -> None:
    """`a=/x,b=y.z`, a JSON object and a mapping (TOML table) give one mapping."""
    want = {"lead_id": "/id", "email": "contact.email"}
    assert load_settings(lead_fields="lead_id=/id, email=contact.email").lead_fields == want
    assert (
        load_settings(lead_fields='{"lead_id": "/id", "email": "contact.email"}').lead_fields
        == want
    )
    assert load_settings(lead_fields=want).lead_fields == want
