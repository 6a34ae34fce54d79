"""config show and the start-up log mask URL credentials, token parameters and Clay webhooks."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamproc.cli import main
from streamproc.logs import configure_logging, get_logger
from streamproc.redact import (
    MASK,
    is_secret_param,
    mask_url,
    printable_settings,
    secret_values,
    webhook_id,
)
from streamproc.settings import Settings, load_settings

USER = "svc-enricher"
PASSWORD = "pw-Hunter2-0xC0FFEE"
TOKEN = "tok-8b1f0c2d9e7a"
SIG = "sig-55aa55aa55aa"
WEBHOOK_PATH = "/v3/sources/webhook/pull-in-data-from-a-webhook-0c5e7d1a-b6f2"
WEBHOOK = f"https://api.clay.com{WEBHOOK_PATH}"
WEBHOOK_2 = "https://api.clay.com/v3/sources/webhook/pull-in-data-from-a-webhook-99ff"
PROVIDER = f"https://{USER}:{PASSWORD}@enrich.example:8443/v1/enrich?region=eu&api_key={TOKEN}"
CLAY_SECRET = "callback-secret-77d1"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"https://{USER}:{PASSWORD}@host.example/p", f"https://{MASK}@host.example/p"),
        (f"https://{TOKEN}@host.example/p", f"https://{MASK}@host.example/p"),
        (
            f"https://host.example/p?region=eu&token={TOKEN}&limit=5",
            f"https://host.example/p?region=eu&token={MASK}&limit=5",
        ),
        (
            f"https://h.example/?X-Amz-Signature={SIG}&X-Amz-Credential=AKIA1",
            f"https://h.example/?X-Amz-Signature={MASK}&X-Amz-Credential={MASK}",
        ),
        (
            f"https://h.example/cb#access_token={TOKEN}&state=1",
            f"https://h.example/cb#access_token={MASK}&state=1",
        ),
        ("http://[::1]:8099/enrich?monkey=1", "http://[::1]:8099/enrich?monkey=1"),
        ("http://127.0.0.1:8099/enrich", "http://127.0.0.1:8099/enrich"),
        ("http://host.example:99999/x", MASK),
    ],
)
def test_mask_url_hides_userinfo_and_token_parameters(url: str, shown: str) -> None:
    """Userinfo and token-like parameter values are masked; host, path and the rest stay."""
    assert mask_url(url) == shown


def test_mask_url_with_secret_path_keeps_only_scheme_and_host() -> None:
    """A URL that is itself a credential shows its scheme and host only."""
    assert mask_url(WEBHOOK + "?x=1#y", secret_path=True) == f"https://api.clay.com/{MASK}"


@pytest.mark.parametrize(
    "name",
    [
        "token",
        "access_token",
        "key",
        "api_key",
        "apiKey",
        "API-KEY",
        "secret",
        "client_secret",
        "signature",
        "sig",
        "auth",
        "password",
        "hub.verify_token",
    ],
)
def test_token_like_parameter_names_are_secret(name: str) -> None:
    """The usual names of credentials in query strings are recognised, whatever the case."""
    assert is_secret_param(name)


@pytest.mark.parametrize("name", ["region", "limit", "monkey", "keyboard_layout", "page"])
def test_ordinary_parameter_names_are_not_secret(name: str) -> None:
    """Plain parameters stay readable: 'key' counts only as a word of its own."""
    assert not is_secret_param(name)


safe_text = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=6, max_size=20)


@given(safe_text, safe_text, st.sampled_from(["token", "api_key", "sig", "secret", "auth"]))
def test_no_credential_survives_mask_url(password: str, token: str, name: str) -> None:
    """Whatever the password and token, neither appears in the masked URL."""
    url = f"https://user:{password}@h.example/p?a=1&{name}={quote(token)}"
    shown = mask_url(url)
    assert f":{password}@" not in shown
    assert f"={token}" not in shown
    assert shown.startswith(f"https://{MASK}@h.example/p?a=1&")


def _settings() -> Settings:
    return Settings(
        provider_url=PROVIDER,
        provider_api_key=TOKEN,
        clay_webhook_urls=(WEBHOOK, WEBHOOK_2),
        clay_callback_secret=CLAY_SECRET,
    )


def test_printable_settings_mask_every_secret() -> None:
    """Secret fields, URL credentials and Clay webhook paths are masked; the rest is shown."""
    values = printable_settings(_settings())
    assert values["provider_api_key"] == MASK
    assert values["clay_callback_secret"] == MASK
    assert values["provider_url"] == (
        f"https://{MASK}@enrich.example:8443/v1/enrich?region=eu&api_key={MASK}"
    )
    assert values["clay_webhook_urls"] == [
        f"https://api.clay.com/{MASK} (webhook {webhook_id(WEBHOOK)})",
        f"https://api.clay.com/{MASK} (webhook {webhook_id(WEBHOOK_2)})",
    ]
    assert values["max_in_flight"] == 256


def test_secret_values_lists_what_logs_must_mask() -> None:
    """The log redactor is given the key, URL credentials, token values and webhook URLs."""
    secrets = secret_values(_settings())
    assert {TOKEN, USER, PASSWORD, CLAY_SECRET, WEBHOOK, WEBHOOK_PATH} <= secrets
    assert "" not in secrets
    assert "eu" not in secrets


@pytest.mark.parametrize("as_json", [False, True])
def test_config_show_prints_no_credential(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], as_json: bool
) -> None:
    """config show (text and --json) prints neither URL credentials nor webhook paths."""
    monkeypatch.setenv("STREAMPROC_PROVIDER_URL", PROVIDER)
    monkeypatch.setenv("STREAMPROC_CLAY_WEBHOOK_URLS", f"{WEBHOOK},{WEBHOOK_2}")
    monkeypatch.setenv("STREAMPROC_CLAY_CALLBACK_SECRET", CLAY_SECRET)
    code = main(["config", "show", *(["--json"] if as_json else [])])
    out = capsys.readouterr().out
    assert code == 0
    for secret in (USER, PASSWORD, TOKEN, CLAY_SECRET, "pull-in-data", "0c5e7d1a"):
        assert secret not in out
    assert "enrich.example:8443/v1/enrich" in out
    assert webhook_id(WEBHOOK) in out
    if as_json:
        assert orjson.loads(out)["provider_url"].startswith(f"https://{MASK}@")


API_KEY = "sk-live-4f9a0b7c2d"
BODY_PASSWORD = "hunter2-body-pw"
DECLARATIVE = f"""
[streamproc]
provider = "declarative"

[streamproc.provider_declarative]
url = "https://api.example/v1/match?api_key={API_KEY}&region=eu"
items = "people"
batch_size = 1
body = {{ email = "{{{{ email }}}}", password = "{BODY_PASSWORD}" }}

[streamproc.provider_declarative.headers]
Authorization = "Bearer {API_KEY}"
X-Api-Key = "{API_KEY}"
X-From-Env = "${{PATH}}"
Idempotency-Key = "{{{{ lead_id }}}}"
Accept = "application/json"

[streamproc.provider_declarative.statuses]
token_expired = "rejected"
"""


@pytest.mark.parametrize("as_json", [False, True])
def test_config_show_masks_literal_secrets_of_the_declarative_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], as_json: bool
) -> None:
    """A key written into provider_declarative (a header, the URL's query, a body field)
    is masked by config show; references (${ENV}, {{ lead }}) and plain values stay."""
    config = tmp_path / "streamproc.toml"
    config.write_text(DECLARATIVE)
    code = main(["config", "show", "--config", str(config), *(["--json"] if as_json else [])])
    out = capsys.readouterr().out
    assert code == 0
    assert API_KEY not in out and BODY_PASSWORD not in out
    assert "${PATH}" in out and "{{ lead_id }}" in out and "application/json" in out
    assert "api.example/v1/match" in out
    if as_json:
        table = orjson.loads(out)["provider_declarative"]
        assert table["headers"]["Authorization"] == MASK
        assert table["headers"]["X-Api-Key"] == MASK
        assert table["body"]["password"] == MASK
        assert table["statuses"] == {"token_expired": "rejected"}


def test_a_declarative_literal_key_is_masked_in_log_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A log line carrying the declarative table's literal key (a header echoed in an
    error) shows the mask, not the key; ordinary words of the table stay readable."""
    config = tmp_path / "streamproc.toml"
    config.write_text(DECLARATIVE)
    settings = load_settings(config)
    secrets = secret_values(settings)
    assert {API_KEY, BODY_PASSWORD} <= secrets
    assert "rejected" not in secrets
    configure_logging("INFO", "json", secrets=secrets)
    get_logger("test").warning(
        "provider.refused", header=f"Bearer {API_KEY}", body={"password": BODY_PASSWORD}
    )
    err = capsys.readouterr().err
    assert "provider.refused" in err
    assert API_KEY not in err and BODY_PASSWORD not in err
    assert MASK in err


def test_a_waterfall_instances_literal_keys_are_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A key written into a waterfall's provider instance (a declarative header, another
    type's api_key) is masked by config show and listed for the log masking."""
    config = tmp_path / "streamproc.toml"
    config.write_text(
        "[streamproc.providers.finder]\n"
        'url = "https://finder.example/v2"\n'
        f'headers = {{ "X-Api-Key" = "{API_KEY}" }}\n'
        "[streamproc.providers.people]\n"
        'type = "acme"\n'
        f'api_key = "{BODY_PASSWORD}"\n'
    )
    code = main(["config", "show", "--config", str(config), "--json"])
    out = capsys.readouterr().out
    assert code == 0
    assert API_KEY not in out and BODY_PASSWORD not in out
    table = orjson.loads(out)["providers"]
    assert table["finder"]["headers"]["X-Api-Key"] == MASK
    assert table["people"]["api_key"] == MASK
    assert {API_KEY, BODY_PASSWORD} <= secret_values(load_settings(config))
