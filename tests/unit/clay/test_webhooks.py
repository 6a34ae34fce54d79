"""Webhook lifetime counts and rotation: which Clay webhook takes the next row."""

from __future__ import annotations

import pytest

from streamproc.clay.webhooks import WebhookRotation
from streamproc.redact import webhook_id

URLS = ["https://api.clay.example/hook/a", "https://api.clay.example/hook/b"]


def _rotation(**changes: object) -> WebhookRotation:
    options: dict[str, object] = {"owner": "me", "limit": 3, "headroom": 0, **changes}
    return WebhookRotation(URLS, **options)  # type: ignore[arg-type]


def _submit(rotation: WebhookRotation, rows: int) -> list[int]:
    indexes = []
    for _ in range(rows):
        slot = rotation.reserve()
        assert slot is not None
        rotation.submitting(slot)
        indexes.append(slot.index)
    return indexes


def test_rows_go_to_the_first_webhook_until_its_limit_then_to_the_next() -> None:
    """With a limit of 3, rows 1-3 go to webhook 0, rows 4-6 to webhook 1: one rotation."""
    rotation = _rotation()
    assert _submit(rotation, 6) == [0, 0, 0, 1, 1, 1]
    assert rotation.rotations == 1
    assert [rotation.rows(0), rotation.rows(1)] == [3, 3]


def test_when_every_webhook_is_used_up_there_is_no_slot() -> None:
    """After limit x webhooks rows, reserve() answers None and the state says exhausted."""
    rotation = _rotation()
    _submit(rotation, 6)
    assert rotation.reserve() is None
    assert rotation.exhausted()
    assert rotation.remaining_rows() == 0
    assert rotation.current is None


def test_headroom_retires_a_webhook_before_its_limit() -> None:
    """Limit 10 with headroom 2: a webhook takes 8 rows from us."""
    rotation = _rotation(limit=10, headroom=2)
    assert _submit(rotation, 9).count(0) == 8


def test_reservations_count_at_once_so_concurrent_leads_never_overshoot() -> None:
    """Three reservations not yet submitted already fill a webhook of limit 3."""
    rotation = _rotation()
    slots = [rotation.reserve() for _ in range(4)]
    assert [s.index for s in slots if s is not None] == [0, 0, 0, 1]


def test_a_released_or_refused_row_gives_its_place_back() -> None:
    """release() undoes a reservation; not_accepted() undoes a submission."""
    rotation = _rotation()
    slot = rotation.reserve()
    assert slot is not None
    rotation.release(slot)
    assert rotation.rows(0) == 0
    (index,) = _submit(rotation, 1)
    slot = rotation.reserve()
    assert slot is not None
    rotation.submitting(slot)
    rotation.not_accepted(slot)
    assert rotation.rows(index) == 1


def test_other_owners_counts_are_summed_and_our_own_records_ignored() -> None:
    """Counts of other instances (state topic) add up; an echo of our own record is ignored."""
    rotation = _rotation(limit=10)
    wid = webhook_id(URLS[0])
    rotation.apply(f"{wid}/other-1", {"webhook": wid, "rows": 4})
    rotation.apply(f"{wid}/other-2", {"webhook": wid, "rows": 5})
    rotation.apply(f"{wid}/me", {"webhook": wid, "rows": 999})
    assert rotation.rows(0) == 9
    assert _submit(rotation, 2) == [0, 1]
    rotation.apply(f"{wid}/other-2", None)
    assert rotation.rows(0) == 5


def test_an_unreadable_count_is_refused() -> None:
    """A count without a whole number of rows raises ValueError and changes nothing."""
    rotation = _rotation()
    wid = webhook_id(URLS[0])
    with pytest.raises(ValueError, match="rows"):
        rotation.apply(f"{wid}/other", {"rows": "many"})
    assert rotation.rows(0) == 0


def test_capacity_alert_fires_at_the_ratio_of_the_last_webhook() -> None:
    """With limit 10 and ratio 0.9, the alert is off at 8 rows on the last webhook, on at 9."""
    rotation = _rotation(limit=10, alert_ratio=0.9)
    _submit(rotation, 18)
    assert not rotation.capacity_low()
    _submit(rotation, 1)
    assert rotation.capacity_low()


def test_the_durable_record_names_the_webhook_by_id_never_by_url() -> None:
    """The state record key and value carry the webhook id and our count, not the URL."""
    rotation = _rotation()
    _submit(rotation, 2)
    wid = webhook_id(URLS[0])
    key, value = rotation.record(wid)
    assert key == f"clay/webhook/{wid}/me"
    assert value == {"webhook": wid, "rows": 2}
    assert "clay.example" not in key + str(value)
