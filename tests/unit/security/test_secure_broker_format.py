"""The security tests' broker is formatted with a cluster id the storage tool cannot misread."""

from __future__ import annotations

import base64
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from tests.integration.security.broker import format_args, new_cluster_id

#: 16 bytes whose URL-safe base64 starts with "-" (0xF8 = 0b111110.., index 62).
DASH_FIRST = b"\xf8" + bytes(15)


def test_ten_thousand_cluster_ids_never_read_as_a_flag() -> None:
    """No generated id starts with (or contains) "-", and each is a 16-byte Kafka Uuid."""
    ids = [new_cluster_id() for _ in range(10_000)]
    assert not [cid for cid in ids if "-" in cid]
    assert all(len(base64.urlsafe_b64decode(cid + "==")) == 16 for cid in ids)
    assert len(set(ids)) == len(ids)


def test_a_draw_that_would_start_with_a_dash_is_drawn_again() -> None:
    """The generator discards an id starting with "-" and returns the next draw's."""
    assert base64.urlsafe_b64encode(DASH_FIRST).decode().startswith("-")
    draws = iter([DASH_FIRST, bytes(16)])
    assert new_cluster_id(lambda: next(draws)) == "A" * 22


@given(st.binary(min_size=16, max_size=16))
def test_format_argv_glues_the_id_to_its_option(raw: bytes) -> None:
    """Whatever the id, even one starting with "-", it is never an argv element of its own."""
    cluster_id = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    args = format_args("/libs", cluster_id, Path("/tmp/format.properties"))
    assert f"--cluster-id={cluster_id}" in args
    assert cluster_id not in args
    assert "-t" not in args
    assert all(not arg.startswith("-") or arg.startswith(("--", "-cp")) for arg in args)
