"""The ``streamproc replay`` command: its flags, their validation, signals and the summary.

Every flag is checked before anything connects; a bad one is one line and exit code 2
(:class:`~streamproc.errors.ConfigError`). Exit codes of a run: 0 when it reached the end
offsets (or ``--limit``), 130 when a signal stopped it (the summary says what was done;
run again to continue), 1 when the safety check refused to start or stopped it.

Signals: the first SIGINT/SIGTERM stops the run after the current transaction; a second
one cancels at once (the open transaction is aborted: nothing of it was moved).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from datetime import UTC, datetime
from typing import TextIO

import orjson

from streamproc.errors import ConfigError
from streamproc.logs import get_logger
from streamproc.ops.http import OpsServer
from streamproc.ops.metrics import Metrics
from streamproc.replay.config import ReplayConfig
from streamproc.replay.filters import KNOWN_CLASSES, RETRIABLE_CHOICES, ReplayFilter
from streamproc.replay.progress import MetricsProgress, ProgressSink, make_progress
from streamproc.replay.replayer import Replayer, ReplayOptions
from streamproc.signals import StopSignals

__all__ = [
    "add_filter_arguments",
    "add_replay_arguments",
    "filters_from_args",
    "options_from_args",
    "replay_command",
    "whole_number",
]

log = get_logger("streamproc.replay")

EXIT_OK = 0
EXIT_UNSAFE = 1
EXIT_INTERRUPTED = 130


def add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    """The record filters, shared by ``replay`` and ``dlq show`` (:func:`filters_from_args`)."""
    f = parser.add_argument_group("which records (filters; all must match)")
    f.add_argument(
        "--error-class",
        action="append",
        default=[],
        metavar="CLASS",
        help=f"repeatable or comma-separated; one of {', '.join(KNOWN_CLASSES)}",
    )
    f.add_argument(
        "--since",
        metavar="TIME",
        help="failed at or after TIME: ISO-8601 (2026-11-26T03:00:00Z) or a duration ago (2h)",
    )
    f.add_argument("--until", metavar="TIME", help="failed before TIME (same formats)")
    f.add_argument("--key", metavar="KEY", help="only the record with this key (lead_id)")
    f.add_argument(
        "--retriable",
        action="append",
        default=[],
        metavar="{" + ",".join(RETRIABLE_CHOICES) + "}",
        help="repeatable or comma-separated; unknown: records that do not say "
        "(Spring Kafka, Kafka Connect)",
    )
    f.add_argument(
        "--attempt",
        metavar="N|N+|N-M",
        help="processed exactly N times, N times or more (3+), or N to M times",
    )


def filters_from_args(args: argparse.Namespace, now: datetime | None = None) -> ReplayFilter:
    """The filters of :func:`add_filter_arguments`, validated (``ConfigError`` on a bad one)."""
    return ReplayFilter.parse(
        error_classes=args.error_class,
        since=args.since,
        until=args.until,
        key=args.key,
        retriable=args.retriable,
        attempt=args.attempt,
        now=now or datetime.now(UTC),
    )


def add_replay_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``replay`` flags (the settings flags are added by the CLI)."""
    add_filter_arguments(parser)
    r = parser.add_argument_group("how")
    r.add_argument("--limit", metavar="N", help="stop after N matching records")
    r.add_argument(
        "--max-attempts",
        metavar="N",
        default="3",
        help="park records processed N times or more (default 3)",
    )
    r.add_argument("--rate", metavar="R", help="re-inject at most R records per second")
    r.add_argument(
        "--dry-run",
        action="store_true",
        help="read and report what would happen, by error class; write and commit nothing",
    )
    r.add_argument(
        "--follow",
        action="store_true",
        help="keep replaying new DLQ records instead of stopping at the end seen at start",
    )
    r.add_argument(
        "--force",
        action="store_true",
        help="replay even while the breaker is open or the budget is spent",
    )
    r.add_argument("--json", action="store_true", help="print the summary as JSON")
    r.add_argument(
        "--metrics-port",
        metavar="PORT",
        help="serve /metrics (replay progress), /healthz and /status on PORT while running "
        "(0 picks a free port; off by default, so it never collides with a processor's)",
    )
    r.add_argument("--no-progress", action="store_true", help="no progress bar or log lines")


def whole_number(text: str | None, flag: str, minimum: int) -> int | None:
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: expected a whole number >= {minimum}") from None
    if value < minimum:
        raise ConfigError(f"{flag} {text!r}: expected a whole number >= {minimum}")
    return value


def options_from_args(args: argparse.Namespace, now: datetime | None = None) -> ReplayOptions:
    """Validate the flags into :class:`ReplayOptions` (``ConfigError`` on the first bad one)."""
    filters = filters_from_args(args, now)
    rate: float | None = None
    if args.rate is not None:
        try:
            rate = float(args.rate)
        except ValueError:
            rate = math.nan
        if not (math.isfinite(rate) and rate > 0):
            raise ConfigError(f"--rate {args.rate!r}: expected records per second > 0, e.g. 50")
    max_attempts = whole_number(args.max_attempts, "--max-attempts", 1)
    assert max_attempts is not None
    if args.follow and filters.active:
        raise ConfigError(
            "--follow cannot be combined with the filters (--error-class, --since, --until, "
            "--key, --retriable, --attempt): a "
            "following run would read the records it puts back forever; run without "
            "--follow for a filtered replay"
        )
    if args.follow and args.dry_run:
        raise ConfigError("--dry-run reports what is in the DLQ now; it cannot --follow")
    return ReplayOptions(
        filters=filters,
        limit=whole_number(args.limit, "--limit", 1),
        max_attempts=max_attempts,
        rate_per_s=rate,
        follow=args.follow,
        dry_run=args.dry_run,
        force=args.force,
    )


def print_report(
    replayer: Replayer, config: ReplayConfig, *, as_json: bool, file: TextIO | None = None
) -> None:
    out = file or sys.stdout
    report = replayer.report
    if as_json:
        out.write(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        text = report.render_text(
            raw=config.topic_raw, parked=config.topic_parked, dlq=config.topic_dlq
        )
        out.write(text + "\n")
    out.flush()


async def replay_command(
    config: ReplayConfig,
    options: ReplayOptions,
    *,
    as_json: bool = False,
    show_progress: bool = True,
    progress: ProgressSink | None = None,
    file: TextIO | None = None,
    metrics_port: int | None = None,
) -> int:
    """Run one replay with signal handling and print its summary; the exit code."""
    sink = progress or make_progress(show_progress)
    ops: OpsServer | None = None
    if metrics_port is not None:
        metrics = Metrics()
        sink = MetricsProgress(metrics, sink)
    replayer = Replayer(config, options, progress=sink)
    if metrics_port is not None:
        ops = OpsServer(
            config.http_host,
            metrics_port,
            metrics,
            status_fn=lambda: replayer.report.to_json(),
            ready_fn=lambda: (True, []),
        )
        try:
            await ops.start()
        except OSError as exc:
            raise ConfigError(
                f"--metrics-port {metrics_port}: cannot listen on {config.http_host}:"
                f"{metrics_port} ({exc.strerror or exc}); pick a free port or 0"
            ) from None
        log.info("replay.metrics", url=f"{ops.url}/metrics")
    try:
        return await _run_replay(replayer, config, as_json=as_json, file=file)
    finally:
        if ops is not None:
            await ops.stop()


async def _run_replay(
    replayer: Replayer, config: ReplayConfig, *, as_json: bool, file: TextIO | None
) -> int:
    task = asyncio.ensure_future(replayer.run())

    def stop() -> None:
        log.warning("replay.stopping", after="the current transaction")
        replayer.request_stop()

    def cancel() -> None:
        log.warning("replay.cancelled", note="the open transaction is aborted")
        task.cancel()

    with StopSignals(stop, cancel) as signals:
        try:
            await task
        except asyncio.CancelledError:
            if signals.count < 2:
                raise  # cancelled from outside, not by a second signal
            replayer.report.stop_reason = "interrupted"
            print_report(replayer, config, as_json=as_json, file=file)
            return EXIT_INTERRUPTED
        except Exception:
            if replayer.report.read:
                print_report(replayer, config, as_json=as_json, file=file)
            raise
    print_report(replayer, config, as_json=as_json, file=file)
    reason = replayer.report.stop_reason
    if reason == "interrupted":
        return EXIT_INTERRUPTED
    if reason == "unsafe":
        return EXIT_UNSAFE
    return EXIT_OK
