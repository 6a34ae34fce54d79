"""How the app wires the pacing gate's view of the group's budget (no I/O: the app is
built, never started)."""

from __future__ import annotations

from streamproc.app import App
from streamproc.settings import Settings


def _own_held_given(**changes: object) -> bool:
    app = App(Settings(pacing_enabled=True, **changes))  # type: ignore[arg-type]
    assert app.pacing is not None and app.pacing.gate is not None
    view = app.pacing.gate._view
    assert view is not None
    return view.own_held is not None


def test_leads_in_flight_draw_on_the_instances_leases_except_in_clay_mode() -> None:
    """With a provider called in the run, leads in flight take slices of the instance's
    leases, so its granted claims cover them; in Clay mode each submitted lead keeps a
    claim of its own until its callback, so none covers a lead in flight."""
    assert _own_held_given(provider_url="http://127.0.0.1:9/enrich")
    assert not _own_held_given(
        provider_mode="clay",
        clay_webhook_urls="https://api.clay.example/hook/a",
        clay_callback_secret="s",
    )
