"""``streamproc mock-provider``: its arguments, and the simulator they start.

The simulators are imported when the command runs, not when the CLI builds its parser.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from streamproc.errors import ConfigError
from streamproc.settings import CallbackAuth

__all__ = ["add_mock_provider_arguments", "mock_provider_command"]

_Config = TypeVar("_Config")


def add_mock_provider_arguments(mock: argparse.ArgumentParser) -> None:
    mock.add_argument("--host", default="127.0.0.1")
    mock.add_argument("--port", type=int, default=8099)
    mock.add_argument("--latency-ms", type=float, default=50.0, help="mean latency")
    mock.add_argument(
        "--latency-jitter-ms",
        type=float,
        default=None,
        help="spread of the latency (see the mock's docs for the distribution)",
    )
    mock.add_argument("--error-rate", type=float, default=0.0, help="share of 5xx answers")
    mock.add_argument("--rate-limit-rate", type=float, default=0.0, help="share of 429 answers")
    mock.add_argument("--credits-per-call", type=int, default=6)
    mock.add_argument(
        "--outage",
        action="append",
        default=[],
        metavar="START:END",
        help="seconds after start during which every call is 503 (repeatable)",
    )
    mock.add_argument(
        "--plan-limit",
        type=int,
        default=None,
        help="the plan's rate limit: at most this many calls per --plan-window-s, 429 with "
        "Retry-After and x-ratelimit-* headers over it (counted as plan_limited in /stats)",
    )
    mock.add_argument("--plan-window-s", type=float, default=None, help="default 60")
    mock.add_argument("--plan-window", choices=["fixed", "sliding"], default=None)
    mock.add_argument("--api-key", default=None, help="require this Bearer key (401 otherwise)")
    mock.add_argument("--seed", type=int, default=None)
    mock.add_argument(
        "--bulk-reorder",
        action="store_true",
        default=None,
        help="answer bulk items in reverse order (to test matching by item_id)",
    )
    mock.add_argument(
        "--honour-idempotency",
        action="store_true",
        default=None,
        help="answer a repeated Idempotency-Key its first answer again, billing nothing",
    )
    mock.add_argument(
        "--api-auth",
        choices=["key", "oauth2", "basic"],
        default="key",
        help="the API simulators (person-match, company-bulk, email-finder): their own key, "
        "OAuth2 client credentials (POST /oauth/token, client test-client, secret the key), "
        "or HTTP Basic (test-client:key)",
    )
    mock.add_argument(
        "--misses",
        default="",
        help="the API simulators: comma-separated domain suffixes they find nothing for "
        "(beside .nomatch.test), so two simulators find different shares of the leads; "
        "the e-mail verifier answers addresses at those domains invalid",
    )
    clay = mock.add_argument_group(
        "clay mode (--mode clay: webhooks at /webhook/<name>, callbacks to --callback-url; "
        "--error-rate is then the share of error rows, --rate-limit-rate of 429s)"
    )
    clay.add_argument(
        "--mode",
        choices=["sync", "clay", "person-match", "company-bulk", "email-finder", "email-verifier"],
        default="sync",
        help="the contract (sync), Clay, or a real API's simulator (docs/simulators.md)",
    )
    clay.add_argument("--callback-url", default=None, help="streamproc's callback receiver")
    clay.add_argument("--callback-secret", default=None, help="shared secret of the callbacks")
    clay.add_argument("--callback-auth", choices=["header", "hmac"], default="header")
    clay.add_argument("--callback-auth-header", default="X-Streamproc-Callback-Auth")
    clay.add_argument("--webhook-token", default=None, help="require this x-clay-webhook-auth")
    clay.add_argument("--duplicate-rate", type=float, default=0.0, help="rows called back twice")
    clay.add_argument("--missing-rate", type=float, default=0.0, help="rows never called back")
    clay.add_argument("--min-delay-ms", type=float, default=200.0)
    clay.add_argument("--max-delay-ms", type=float, default=2_000.0)
    clay.add_argument("--webhook-row-limit", type=int, default=50_000)
    clay.add_argument("--callback-retries", type=int, default=3)


def mock_provider_command(args: argparse.Namespace) -> int:
    """Serve the simulator ``args`` describe until SIGINT or SIGTERM; exit code 0."""
    if args.mode == "clay":
        return _clay_simulator(args)
    if args.mode in ("person-match", "company-bulk", "email-finder", "email-verifier"):
        from streamproc.simulators.apis import ApiSimConfig, run_api

        run_api(
            ApiSimConfig(
                kind=args.mode,
                host=args.host,
                port=args.port,
                api_key=args.api_key or "test-key",
                latency_ms=args.latency_ms,
                reorder=bool(args.bulk_reorder),
                honour_idempotency=bool(args.honour_idempotency),
                auth=args.api_auth,
                misses=tuple(m for m in args.misses.split(",") if m),
            )
        )
        return 0
    from streamproc.simulators.provider import MockProviderConfig, run_mock_provider

    outages: list[tuple[float, float]] = []
    for spec in args.outage:
        try:
            start_s, end_s = (float(part) for part in spec.split(":", 1))
        except ValueError:
            raise ConfigError(
                f"--outage {spec!r}: expected START:END in seconds, e.g. 30:90"
            ) from None
        if end_s <= start_s:
            raise ConfigError(f"--outage {spec!r}: END must be after START")
        outages.append((start_s, end_s))
    for name in ("error_rate", "rate_limit_rate"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            raise ConfigError(f"--{name.replace('_', '-')} must be between 0 and 1")
    config = _config_from(MockProviderConfig, args, outages=tuple(outages))
    run_mock_provider(config)
    return 0


def _clay_simulator(args: argparse.Namespace) -> int:
    from streamproc.simulators.clay import ClaySimulatorConfig, run_clay_simulator

    if not args.callback_url:
        raise ConfigError("--mode clay needs --callback-url (streamproc's callback receiver)")
    try:
        config = _config_from(
            ClaySimulatorConfig,
            args,
            callback_auth=CallbackAuth(args.callback_auth),
            credits_per_row=args.credits_per_call,
        )
    except ValueError as exc:
        raise ConfigError(f"mock-provider --mode clay: {exc}") from None
    run_clay_simulator(config)
    return 0


def _config_from(make: Callable[..., _Config], args: argparse.Namespace, **given: Any) -> _Config:
    """``make`` called with each of its parameters the command line set (a flag left out,
    or ``None``, keeps the default), and with ``given``."""
    names = inspect.signature(make).parameters.keys() - given.keys()
    values = {name: getattr(args, name, None) for name in names}
    return make(**{k: v for k, v in values.items() if v is not None}, **given)
