"""Callback authentication (shared secret, HMAC-SHA256) and validation, without HTTP."""

from __future__ import annotations

import hashlib
import hmac

import orjson
import pytest

from streamproc.clay.callback import BadCallback, authenticate, parse_callback, sign
from streamproc.settings import CallbackAuth

SECRET = "s3cret"
BODY = orjson.dumps({"lead_id": "L1", "data": {"company": "Acme"}})


def test_hmac_signature_of_the_raw_body_verifies() -> None:
    """sha256=<hex> of the exact body with the shared secret is accepted, prefix or not."""
    expected = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, BODY) == f"sha256={expected}"
    assert authenticate(CallbackAuth.HMAC, SECRET, f"sha256={expected}", BODY)
    assert authenticate(CallbackAuth.HMAC, SECRET, expected.upper(), BODY)


@pytest.mark.parametrize(
    ("header", "body"),
    [
        (None, BODY),
        ("", BODY),
        (sign("wrong-secret", BODY), BODY),
        (sign(SECRET, BODY), BODY + b" "),
        (SECRET, BODY),
        ("sha256=" + "0" * 64, BODY),
    ],
    ids=["missing", "empty", "wrong-secret", "tampered-body", "plain-secret", "zeros"],
)
def test_anything_but_the_right_hmac_is_refused(header: str | None, body: bytes) -> None:
    """No header, another key, a changed body or the bare secret do not verify in hmac mode."""
    assert not authenticate(CallbackAuth.HMAC, SECRET, header, body)


def test_header_mode_compares_the_secret_itself() -> None:
    """In header mode the secret is accepted, anything else (a signature too) refused."""
    assert authenticate(CallbackAuth.HEADER, SECRET, SECRET, BODY)
    assert not authenticate(CallbackAuth.HEADER, SECRET, SECRET + "x", BODY)
    assert not authenticate(CallbackAuth.HEADER, SECRET, sign(SECRET, BODY), BODY)
    assert not authenticate(CallbackAuth.HEADER, "", "", BODY)


def test_data_object_credits_and_correlation_are_read() -> None:
    """A data callback yields its data, credits and correlation id."""
    body = {"lead_id": "L1", "correlation_id": "c1", "data": {"a": 1}, "credits": 4}
    callback = parse_callback(orjson.dumps(body))
    assert (callback.lead_id, callback.correlation_id, callback.data, callback.credits) == (
        "L1",
        "c1",
        {"a": 1},
        4,
    )
    assert callback.error is None


def test_an_error_row_is_an_error() -> None:
    """A non-empty error makes an error row without data."""
    body = {"lead_id": "L1", "correlation_id": "c", "error": "no match"}
    callback = parse_callback(orjson.dumps(body))
    assert callback.error == "no match"
    assert callback.data is None


def test_columns_without_a_data_object_are_the_enrichment() -> None:
    """Clay columns mapped one by one (no data key) become the enrichment, minus our ids."""
    body = {"lead_id": "L1", "correlation_id": "c", "company": "Acme", "employees": 5}
    assert parse_callback(orjson.dumps(body)).data == {"company": "Acme", "employees": 5}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{nope", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (orjson.dumps({"data": {}}), "lead_id"),
        (orjson.dumps({"lead_id": 7, "data": {}}), "lead_id"),
        (orjson.dumps({"lead_id": "x" * 300, "data": {}}), "lead_id"),
        (orjson.dumps({"lead_id": "L", "correlation_id": "c", "data": [1]}), "data must be"),
        (orjson.dumps({"lead_id": "L", "correlation_id": "c", "credits": -1}), "credits"),
        (orjson.dumps({"lead_id": "L", "correlation_id": "c", "credits": True}), "credits"),
        (orjson.dumps({"lead_id": "L", "correlation_id": "c", "error": 5}), "error must be"),
        (orjson.dumps({"lead_id": "L", "correlation_id": 1, "data": {}}), "correlation_id"),
        (orjson.dumps({"lead_id": "L", "data": {}}), "correlation_id"),
        (orjson.dumps({"lead_id": "L", "correlation_id": "", "data": {}}), "correlation_id"),
        (orjson.dumps({"lead_id": "L", "correlation_id": "c" * 200, "data": {}}), "correlation"),
        (orjson.dumps({"lead_id": "L", "correlation_id": "c"}), "neither data nor error"),
    ],
)
def test_malformed_callbacks_say_what_is_wrong(body: bytes, reason: str) -> None:
    """Each malformed body is a BadCallback naming the problem."""
    with pytest.raises(BadCallback, match=reason):
        parse_callback(body)


@pytest.mark.parametrize(("credits", "charged"), [("6.0", 6), ("6e0", 6), ("1.2", 2), ("0", 0)])
def test_credits_of_any_json_number_type_count(credits: str, charged: int) -> None:
    """A callback's ``credits`` written 6.0 or 6e0 is 6 (it was refused with 400); a
    fraction rounds up, so the budget never counts fewer credits than Clay charged."""
    body = b'{"lead_id": "L1", "correlation_id": "c1", "data": {"a": 1}, "credits": %s}'
    assert parse_callback(body % credits.encode()).credits == charged
