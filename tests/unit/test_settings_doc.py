"""The settings explained from the model: descriptions, choices, secrets, the README table."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamproc.settings import SECRET_FIELDS, Settings
from streamproc.settings_doc import (
    SECTIONS,
    TABLE_END,
    TABLE_START,
    main,
    markdown_table,
    replace_table,
    setting_docs,
)

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_setting_has_a_description() -> None:
    """A new field without Field(description=...) fails here: --help and the README need it."""
    missing = [name for name, info in Settings.model_fields.items() if not info.description]
    assert missing == []


def test_the_guides_table_is_the_models() -> None:
    """The guide's settings table is what the generator makes from the model today."""
    text = GUIDE.read_text()
    assert replace_table(text, markdown_table()) == text, (
        "docs/configuration.md's settings table drifted: run "
        "`python -m streamproc.settings_doc --write docs/configuration.md`"
    )


def test_check_fails_on_drift_and_write_repairs_it(tmp_path: Path) -> None:
    """--check exits 1 on a table that differs from the model; --write makes it pass."""
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{TABLE_START}\n| stale | table |\n{TABLE_END}\noutro\n")
    assert main(["--check", str(readme)]) == 1
    assert main(["--write", str(readme)]) == 0
    assert main(["--check", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n")
    assert "| `STREAMPROC_MAX_IN_FLIGHT` | `256` | leads in flight per process |" in text


def test_without_markers_the_generator_says_so() -> None:
    """A file without the markers is an error, not a table appended somewhere."""
    with pytest.raises(ValueError, match="no settings table markers"):
        replace_table("no table here", markdown_table())


def test_choices_come_from_enums_and_literals() -> None:
    """Enum and Literal settings list their values; the flag's metavar shows them."""
    docs = {doc.name: doc for doc in setting_docs()}
    assert docs["on_breaker_open"].choices == ("hold", "dlq")
    assert docs["provider_http_transport"].choices == ("aiohttp", "httpx")
    assert docs["log_level"].metavar == "{DEBUG,INFO,WARNING,ERROR,CRITICAL}"
    assert docs["security_protocol"].default == "PLAINTEXT"


def test_units_defaults_and_lists_read_well() -> None:
    """Metavars carry the unit of the name; long default lists are cut with their length."""
    docs = {doc.name: doc for doc in setting_docs()}
    assert (docs["provider_timeout_s"].metavar, docs["provider_timeout_s"].default) == ("S", "10")
    assert docs["commit_interval_ms"].metavar == "MS"
    assert docs["fallback_enabled"].default == "false"
    assert docs["provider_url"].default is None
    assert (
        docs["cache_freemail_domains"].default
        == "gmail.com, googlemail.com, yahoo.com, … (44 names)"
    )


def test_secrets_have_no_flag_and_say_where_they_come_from() -> None:
    """Every SecretStr field is a secret without a flag; the table names its _FILE variable."""
    secrets = {doc.name for doc in setting_docs() if doc.kind == "secret"}
    assert secrets == SECRET_FIELDS
    assert "provider_api_key" in secrets
    assert all(doc.flag is None for doc in setting_docs() if doc.kind == "secret")
    assert "`STREAMPROC_PROVIDER_API_KEY_FILE`" in markdown_table()


def test_sections_start_at_fields_in_model_order() -> None:
    """Each section is named by a field, the first one is the model's first field."""
    names = list(Settings.model_fields)
    assert set(SECTIONS) <= set(names)
    assert names[0] in SECTIONS
    starts = [names.index(name) for name in SECTIONS]
    assert starts == sorted(starts)
