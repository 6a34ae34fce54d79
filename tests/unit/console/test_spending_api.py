"""The console's spending levers: the operator token guards them, a bad request is a 400,
and a good one reaches the same change as `streamproc budget` (over a real HTTP server)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from streamproc.console.api import Console
from streamproc.console.config import ConsoleConfig, SpendingChanger
from streamproc.resilience.spending import SpendingAction
from streamproc.settings import Settings

TOKEN = "operator-tok"


@pytest.fixture
def changes() -> list[dict[str, Any]]:
    """The changes the console asked for (the state topic's part is the CLI's, tested on
    the broker)."""
    return []


def _recording(asked: list[dict[str, Any]]) -> SpendingChanger:
    async def change_spending(
        action: SpendingAction, *, by: str, why: str, limit: int | None = None
    ) -> dict[str, Any]:
        asked.append({"action": action, "by": by, "why": why, "limit": limit})
        return {"paused": action is SpendingAction.PAUSE, "limit": limit or 100}

    return change_spending


async def _serve(settings: Settings, asked: list[dict[str, Any]]) -> AsyncIterator[str]:
    app = web.Application()
    config = dataclasses.replace(
        ConsoleConfig.from_settings(settings), change_spending=_recording(asked)
    )
    Console(config, state=dict, restored=lambda: False).install(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/console/api/spending"
    finally:
        await runner.cleanup()


@pytest.fixture
async def url(changes: list[dict[str, Any]]) -> AsyncIterator[str]:
    async for served in _serve(Settings(console_token=TOKEN), changes):
        yield served


async def _post(url: str, body: Any, token: str | None = TOKEN) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient() as http:
        return await http.post(url, json=body, headers=headers)


@pytest.mark.parametrize(("token", "status"), [(None, 401), ("wrong", 401)])
async def test_a_change_without_the_operator_token_is_refused(
    url: str, changes: list[dict[str, Any]], token: str | None, status: int
) -> None:
    """No token or a wrong one: 401, and nothing is changed."""
    response = await _post(url, {"action": "pause", "reason": "r"}, token)
    assert response.status_code == status
    assert "spending" in response.json()["error"]
    assert changes == []


async def test_a_console_without_an_operator_token_changes_nothing(
    changes: list[dict[str, Any]],
) -> None:
    """No operator token configured: the console is read-only, 403."""
    async for served in _serve(Settings(), changes):
        response = await _post(served, {"action": "pause", "reason": "r"})
        assert response.status_code == 403
    assert changes == []


async def test_a_pause_and_a_limit_with_the_token_reach_the_change(
    url: str, changes: list[dict[str, Any]]
) -> None:
    """With the token, a pause and a limit are changed as asked, by `console` unless named."""
    assert (await _post(url, {"action": "pause", "reason": "incident"})).json()["paused"]
    limited = await _post(url, {"action": "set_limit", "limit": 40, "reason": "r", "by": "ana"})
    assert limited.status_code == 200 and limited.json()["limit"] == 40
    assert changes == [
        {"action": SpendingAction.PAUSE, "by": "console", "why": "incident", "limit": None},
        {"action": SpendingAction.SET_LIMIT, "by": "ana", "why": "r", "limit": 40},
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"action": "stop", "reason": "r"},
        {"action": "set_limit", "limit": -1, "reason": "r"},
        {"action": "set_limit", "limit": "10", "reason": "r"},
        {"action": "pause"},
        [1, 2],
    ],
)
async def test_a_bad_request_is_a_400_and_changes_nothing(
    url: str, changes: list[dict[str, Any]], body: Any
) -> None:
    """An unknown action, a bad limit, no reason or not an object: 400 with one line."""
    response = await _post(url, body)
    assert response.status_code == 400 and response.json()["error"]
    assert changes == []
