"""The ``streamproc`` command line.

Every setting is a flag of the same name (``--max-in-flight`` for ``STREAMPROC_MAX_IN_FLIGHT``),
generated from the settings model so the two never drift. User mistakes end in one line
on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import gc
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamproc import __version__
from streamproc.errors import ConfigError, KafkaSetupError, StreamprocError
from streamproc.logs import configure_logging, get_logger
from streamproc.redact import printable_settings, secret_values
from streamproc.settings import (
    ENV_PREFIX,
    FILE_SUFFIX,
    ProviderMode,
    Settings,
    load_settings,
    start_offset_ms,
)
from streamproc.signals import StopSignals
from streamproc.simulators.command import add_mock_provider_arguments, mock_provider_command

if TYPE_CHECKING:
    from streamproc.app import App
    from streamproc.kafka.acls import Acl
    from streamproc.ops.http import HttpServer

__all__ = ["main"]

EXIT_USAGE = 2
EXIT_RUNTIME = 1

log = get_logger("streamproc.cli")


class _RefuseSecret(argparse.Action):
    """A secret given as a flag: refused in one line that says where secrets go."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        env = ENV_PREFIX + self.dest.removeprefix("secret_").upper()
        raise ConfigError(
            f"{option_string}: secrets are not flags (a flag shows in `ps`); set {env}, or "
            f"{env}{FILE_SUFFIX} to a file that holds it"
        )


#: The settings sections a command reads, by the first field of each (settings_doc.SECTIONS):
#: its --help lists those flags only (`topics create --help` listed 263 lines of settings it
#: never reads). The environment and --config still reach every setting.
_KAFKA = ("bootstrap_servers",)
_READS: dict[str, tuple[str, ...]] = {
    "kafka": _KAFKA,
    "state": (*_KAFKA, "budget_daily_credits"),
    "replay": (*_KAFKA, "provider_url", "budget_daily_credits", "max_in_flight", "http_host"),
}


def _add_setting_flags(parser: argparse.ArgumentParser, reads: str | None = None) -> None:
    """One flag per setting, its help from the settings model (``streamproc.settings_doc``),
    in the model's sections; secrets are named in a note and refused as flags. ``reads``
    (a key of :data:`_READS`) keeps the sections the command reads; None: every one."""
    from streamproc.settings_doc import SECTIONS, setting_docs

    docs = setting_docs()
    if reads is not None:
        sections = {SECTIONS[first] for first in _READS[reads]}
        docs = [doc for doc in docs if doc.section in sections]
    secrets = [doc.env for doc in docs if doc.kind == "secret"]
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help="TOML file with settings (env and flags win)"
    )
    # Seventy settings would make a usage line of fifty; the groups below list them.
    parser.usage = "%(prog)s [options]"
    parser.epilog = (
        f"Each setting is also the environment variable {ENV_PREFIX}<NAME> (flags win). "
        f"Secrets are never flags: {', '.join(secrets)}, each from the environment or from a "
        f"file named by <NAME>{FILE_SUFFIX}."
    )
    groups: dict[str, argparse._ArgumentGroup] = {}
    for doc in docs:
        if doc.kind == "secret":
            parser.add_argument(
                "--" + doc.name.replace("_", "-"),
                dest=f"secret_{doc.name}",
                nargs="?",
                action=_RefuseSecret,
                help=argparse.SUPPRESS,
            )
            continue
        if doc.section not in groups:
            groups[doc.section] = parser.add_argument_group(doc.section)
        flag = doc.flag
        assert flag is not None  # every setting but a secret has one
        help_text = doc.help_text().replace("%", "%%")
        if doc.kind == "bool":
            groups[doc.section].add_argument(
                flag,
                dest=f"setting_{doc.name}",
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            groups[doc.section].add_argument(
                flag,
                dest=f"setting_{doc.name}",
                default=None,
                metavar=doc.metavar,
                help=help_text,
            )


def _settings_from(args: argparse.Namespace) -> Settings:
    overrides = {
        key.removeprefix("setting_"): value
        for key, value in vars(args).items()
        if key.startswith("setting_") and value is not None
    }
    return load_settings(getattr(args, "config", None), **overrides)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamproc",
        description="Fault-tolerant lead enrichment between Kafka topics.",
    )
    parser.add_argument("--version", action="version", version=f"streamproc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="consume leads.raw, enrich, publish (the main job)")
    run.add_argument(
        "--stop-when-idle-s",
        type=float,
        default=None,
        metavar="S",
        help="exit once nothing was consumed for S seconds and nothing is in flight "
        "(demos and batch jobs)",
    )
    _add_setting_flags(run)

    topics = sub.add_parser("topics", help="topic administration")
    tsub = topics.add_subparsers(dest="topics_command", required=True, metavar="ACTION")
    create = tsub.add_parser("create", help="create the five topics (idempotent)")
    create.add_argument("--json", action="store_true")
    _add_setting_flags(create, "kafka")
    describe = tsub.add_parser(
        "describe", help="the five topics: partitions, replication, retention, limits"
    )
    describe.add_argument("--json", action="store_true")
    _add_setting_flags(describe, "kafka")

    group = sub.add_parser("group", help="the consumer group of `run`: lag, members, offsets")
    gsub = group.add_subparsers(dest="group_command", required=True, metavar="ACTION")
    gdescribe = gsub.add_parser(
        "describe", help="state, members and per-partition committed offset, end and lag"
    )
    gdescribe.add_argument("--json", action="store_true")
    gdescribe.add_argument("--group", metavar="ID", help="another group (default: group_id)")
    _add_setting_flags(gdescribe, "kafka")
    reset = gsub.add_parser(
        "reset-offsets",
        help="move the group's committed offsets on leads.raw (a dry run unless --execute)",
        description="Move the group's committed offsets on topic_raw: to the earliest or "
        "latest offset, a time, or an offset. Prints the plan and changes nothing unless "
        "--execute; refused while the group has members (stop every `streamproc run` "
        "first). Backfill: --to-datetime; skip a backlog: --to-latest.",
    )
    target = reset.add_mutually_exclusive_group(required=True)
    target.add_argument("--to-earliest", action="store_true")
    target.add_argument("--to-latest", action="store_true")
    target.add_argument("--to-datetime", metavar="TIME", help="ISO 8601 with zone")
    target.add_argument("--to-offset", metavar="N", type=int)
    reset.add_argument(
        "--partition", metavar="P", type=int, action="append", default=[], help="repeatable"
    )
    reset.add_argument("--execute", action="store_true", help="commit the plan")
    reset.add_argument("--json", action="store_true")
    reset.add_argument("--group", metavar="ID", help="another group (default: group_id)")
    _add_setting_flags(reset, "kafka")

    completion = sub.add_parser(
        "completion",
        help="print a shell completion script",
        description="Bash: `source <(streamproc completion bash)`; zsh: "
        "`source <(streamproc completion zsh)` (in ~/.bashrc or ~/.zshrc).",
    )
    completion.add_argument("shell", choices=["bash", "zsh"])

    config = sub.add_parser("config", help="configuration")
    csub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    show = csub.add_parser("show", help="print the effective configuration, secrets masked")
    show.add_argument("--json", action="store_true")
    _add_setting_flags(show)

    trial = sub.add_parser(
        "try",
        help="send one lead through the configured provider (or waterfall) and show each "
        "step (no Kafka, no budget)",
        description="Send one lead (a JSON object with lead_id and an e-mail or a domain) "
        "through the provider the settings choose (or their waterfall, its providers in the "
        "configured order), one attempt each: each request as sent "
        "(secrets masked), its status, how the answer was classified, what it cost, and the "
        "record that would be published. Produces nothing, reserves no credits.",
    )
    trial.add_argument(
        "--lead", metavar="JSON", default="-", help="the lead as JSON; - or absent: stdin"
    )
    trial.add_argument("--json", action="store_true")
    _add_setting_flags(trial)

    mock = sub.add_parser("mock-provider", help="run the enrichment provider simulator")
    add_mock_provider_arguments(mock)

    produce = sub.add_parser(
        "produce-sample", help="produce sample leads to leads.raw (demos, benchmarks)"
    )
    produce.add_argument("--count", type=int, default=300)
    produce.add_argument(
        "--mix",
        choices=["demo", "clean"],
        default="demo",
        help="demo: mostly good leads plus every failure kind; clean: all good",
    )
    produce.add_argument("--json", action="store_true")
    _add_setting_flags(produce, "kafka")

    from streamproc.replay.command import add_replay_arguments

    replay = sub.add_parser(
        "replay",
        help="move DLQ records back to leads.raw, or on to leads.parked",
        description="Re-inject dead-lettered leads into leads.raw (attempt carried forward); "
        "records out of attempts or not retriable go to leads.parked. Records not matching "
        "the filters are put back at the end of the DLQ, so no run loses them; every move "
        "and the replayer's offset commit are one transaction.",
    )
    add_replay_arguments(replay)
    _add_setting_flags(replay, "replay")

    dlq = sub.add_parser("dlq", help="dead-letter queue tools")
    dsub = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    dlq_stats = dsub.add_parser(
        "stats", help="what is waiting in the DLQ: by class, retriable, attempt, messages"
    )
    dlq_stats.add_argument("--json", action="store_true")
    dlq_stats.add_argument(
        "--all",
        action="store_true",
        help="count the whole retained topic, not only what is pending for the replayer",
    )
    dlq_stats.add_argument(
        "--max-attempts",
        default="3",
        metavar="N",
        help="for the 'replay would' counts, as `replay --max-attempts` (default 3)",
    )
    _add_setting_flags(dlq_stats, "kafka")

    from streamproc.replay.show import add_show_arguments

    dlq_show = dsub.add_parser(
        "show",
        help="list DLQ records (the replay filters, a page at a time) or print one whole",
        description="List the DLQ records pending for the replayer that match the filters "
        "(the same flags as `replay`), a page at a time, or print one record whole with "
        "--partition P --offset O: the error, where it came from, what a replay would do, "
        "every header decoded (ours, Spring Kafka's, Kafka Connect's) and the payload. "
        "Read-only: it joins no group and commits nothing.",
    )
    add_show_arguments(dlq_show)
    _add_setting_flags(dlq_show, "kafka")

    console = sub.add_parser(
        "console",
        help="the web console on its own: overview, DLQ browser, replay (read from Kafka)",
        description="Serve the web console (the one a processor serves at /console/ on its "
        "ops port) without a processor: the group's breaker, budget and lag from Kafka, the "
        "DLQ browser (its records with STREAMPROC_CONSOLE_READ_TOKEN or the operator token), "
        "and replay from the page when STREAMPROC_CONSOLE_TOKEN is set. Listens on "
        "--http-host/--http-port, or --console-host/--console-port when set.",
    )
    _add_setting_flags(console, "replay")

    state = sub.add_parser("state", help="the group's resilience state")
    ssub = state.add_subparsers(dest="state_command", required=True, metavar="ACTION")
    state_show = ssub.add_parser(
        "show", help="breaker, budget spent/limit/reset, cache size (from the state topic)"
    )
    state_show.add_argument("--json", action="store_true")
    _add_setting_flags(state_show, "state")

    budget = sub.add_parser(
        "budget", help="the group's credit budget today: show it, pause, resume, set its limit"
    )
    bsub = budget.add_subparsers(dest="budget_command", required=True, metavar="ACTION")
    budget_show = bsub.add_parser(
        "show", help="today's limit, spent, reserved, whether paused and the last change"
    )
    budget_show.add_argument("--json", action="store_true")
    _add_setting_flags(budget_show, "state")
    levers = {
        "set-limit": "change today's limit for the whole group (lower than spent: stop now)",
        "pause": "stop spending group-wide: leads are held, nothing is charged or lost",
        "resume": "spend again: the held leads go on",
    }
    for name, help_text in levers.items():
        lever = bsub.add_parser(name, help=help_text)
        if name == "set-limit":
            lever.add_argument("limit", metavar="CREDITS", help="today's new limit, >= 0")
        lever.add_argument("--reason", required=True, metavar="TEXT", help="why (logged)")
        lever.add_argument("--by", metavar="NAME", help="who (default: the OS user)")
        lever.add_argument("--json", action="store_true")
        _add_setting_flags(lever, "state")
    return parser


async def _run(settings: Settings, stop_when_idle_s: float | None) -> int:
    from streamproc.app import App

    app = App(settings)
    _mount_console(app)
    # Everything imported and built so far lives as long as the process: out of the
    # collector's sight, a full collection walks only what the leads create, not the ~90k
    # objects of the modules (their number grows with every feature; bench/RESULTS.md).
    gc.collect()
    gc.freeze()

    def stop() -> None:
        log.info("shutdown.requested", grace_s=settings.shutdown_grace_s)
        app.request_stop()

    def abort() -> None:
        log.warning("shutdown.immediate")
        app.abort()

    with StopSignals(stop, abort):
        await app.run(stop_when_idle_s=stop_when_idle_s)
    app.print_summary()
    return 0


def _mount_console(app: App) -> HttpServer:
    """The web console (``/console/``), fed its state records, on the processor's ops port
    or, with ``console_port``, on a listener of its own; returns the server it is on."""
    from streamproc.console import Console
    from streamproc.console.config import ConsoleConfig
    from streamproc.ops.http import HttpServer

    settings = app.settings
    console = Console(
        ConsoleConfig.from_settings(settings),
        state=app.status,
        restored=app.state.restored.is_set,
        readiness=app.readiness,
    )
    app.state_listeners.append(console.on_state)
    server: HttpServer = app.ops
    if settings.console_port is not None:
        server = HttpServer(settings.console_host, settings.console_port, name="console")
        app.http_servers.append(server)
    server.mount(console.install)
    return server


def _print_json(value: Any) -> None:
    import orjson

    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


async def _topics_create(settings: Settings, *, as_json: bool) -> int:
    from streamproc.kafka.topics import create_topics

    reports = await create_topics(settings)
    if as_json:
        _print_json([dataclasses.asdict(report) for report in reports])
        return 0
    for report in reports:
        state = "created" if report.created else "exists"
        print(f"{report.name:<24} partitions={report.partitions:<4} {state}")
    return 0


async def _topics_describe(settings: Settings, *, as_json: bool) -> int:
    from streamproc.kafka.topics import DESCRIBED_CONFIGS, describe_topics

    topics = await describe_topics(settings)
    if as_json:
        _print_json([dataclasses.asdict(topic) for topic in topics])
    else:
        for topic in topics:
            if not topic.exists:
                print(f"{topic.name:<28} MISSING ({topic.role}): run `streamproc topics create`")
                continue
            configs = " ".join(
                f"{name}={topic.configs.get(name) or '-'}" for name in DESCRIBED_CONFIGS
            )
            print(
                f"{topic.name:<28} partitions={topic.partitions:<3} "
                f"replication={topic.replication_factor:<2} {configs}"
            )
    return 0 if all(topic.exists for topic in topics) else EXIT_RUNTIME


async def _group_describe(settings: Settings, group_id: str, *, as_json: bool) -> int:
    from streamproc.kafka.groups import group_position, group_state

    state = await group_state(settings, group_id)
    position = await group_position(settings, group_id, settings.topic_raw)
    if as_json:
        _print_json(
            {
                "group_id": group_id,
                "topic": settings.topic_raw,
                "state": state.state,
                "members": [dataclasses.asdict(m) for m in state.members],
                "lag": position.lag,
                "partitions": [
                    {**dataclasses.asdict(p), "lag": p.lag} for p in position.partitions
                ],
            }
        )
        return 0
    print(
        f"group {group_id} on {settings.topic_raw}: {state.state}, "
        f"{len(state.members)} member(s), lag {position.lag}"
    )
    for member in state.members:
        print(f"  member {member.client_id} {member.host} {member.member_id}")
    print(f"  {'partition':>9} {'committed':>12} {'end':>12} {'lag':>10}")
    for p in position.partitions:
        committed = "-" if p.committed is None else str(p.committed)
        lag = "-" if p.lag is None else str(p.lag)
        print(f"  {p.partition:>9} {committed:>12} {p.end:>12} {lag:>10}")
    if position.unstarted:
        print(f"  (-: never committed; the group starts there at {settings.start_offset})")
    return 0


async def _group_reset(settings: Settings, group_id: str, args: argparse.Namespace) -> int:
    from streamproc.kafka.groups import move_offsets, plan_offset_move

    if args.to_earliest:
        to = "earliest"
    elif args.to_latest:
        to = "latest"
    elif args.to_offset is not None:
        if args.to_offset < 0:
            raise ConfigError(f"--to-offset {args.to_offset}: expected an offset, 0 or more")
        to = "offset"
    else:
        to = args.to_datetime
        try:
            start_offset_ms(to)
        except ValueError as exc:
            raise ConfigError(f"--to-datetime {to}: {exc}") from None
    moves = await plan_offset_move(
        settings, group_id, settings.topic_raw, to=to, offset=args.to_offset,
        partitions=args.partition,
    )  # fmt: skip
    if args.execute:
        await move_offsets(settings, group_id, settings.topic_raw, moves)
    if args.json:
        _print_json(
            {"group_id": group_id, "executed": args.execute,
             "moves": [dataclasses.asdict(m) for m in moves]}
        )  # fmt: skip
        return 0
    verb = "moved" if args.execute else "would move (dry run; --execute to commit)"
    print(f"group {group_id} on {settings.topic_raw}: {verb}")
    for move in moves:
        current = "-" if move.current is None else str(move.current)
        print(f"  partition {move.partition:>3}: {current:>12} -> {move.target}")
    return 0


def _config_show(settings: Settings, as_json: bool) -> int:
    values = printable_settings(settings)
    if as_json:
        _print_json(values)
    else:
        for key, value in values.items():
            print(f"{key:<32} {value if value is not None else '-'}")
    return 0


async def _produce_sample(settings: Settings, count: int, mix: str, *, as_json: bool) -> int:
    from streamproc.sample import produce_sample

    summary = await produce_sample(settings, count, mix=mix)
    if as_json:
        _print_json(
            {"topic": settings.topic_raw, "total": summary.total, "by_kind": summary.by_kind}
        )
        return 0
    print(
        f"produced {summary.total} leads to {settings.topic_raw}: "
        + ", ".join(f"{k} {v}" for k, v in sorted(summary.by_kind.items()))
    )
    return 0


async def _try(settings: Settings, lead_id: str, lead: dict[str, Any], *, as_json: bool) -> int:
    from streamproc.trial import format_trial, try_lead

    trial = await try_lead(settings, lead_id, lead)
    if as_json:
        _print_json(trial.to_json())
    else:
        print(format_trial(trial))
    return 0


async def _state_show(settings: Settings, *, as_json: bool) -> int:
    from streamproc.state.group_state import GroupState
    from streamproc.state.view import state_show

    return await state_show(settings, GroupState.reader(settings), as_json=as_json)


async def _budget(settings: Settings, args: argparse.Namespace) -> int:
    from streamproc.processing.spending_control import change_spending, load_budget, print_budget
    from streamproc.resilience.spending import SpendingAction

    if args.budget_command == "show":
        print_budget(await load_budget(settings), as_json=args.json)
        return 0
    action = SpendingAction(args.budget_command.replace("-", "_"))
    limit = getattr(args, "limit_value", None)
    budget = await change_spending(settings, action, by=args.by, why=args.reason, limit=limit)
    print_budget(budget, as_json=args.json)
    return 0


def _budget_args(args: argparse.Namespace) -> None:
    """Check a lever's input before any connection: one line for a bad one."""
    from streamproc.processing.spending_control import default_by, validate_change
    from streamproc.resilience.spending import SpendingAction

    if args.budget_command == "show":
        return
    args.by = default_by() if args.by is None else args.by
    if args.budget_command == "set-limit":
        text = str(args.limit).strip()
        if not text.isdigit():
            raise ConfigError(f"set-limit {args.limit}: expected a whole number of credits >= 0")
        args.limit_value = int(text)
    action = SpendingAction(args.budget_command.replace("-", "_"))
    validate_change(action, by=args.by, why=args.reason, limit=getattr(args, "limit_value", None))


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "mock-provider":
        configure_logging("INFO", "auto")
        return mock_provider_command(args)
    if args.command == "completion":
        from streamproc.completion import completion_script

        sys.stdout.write(completion_script(_build_parser(), args.shell))
        return 0
    settings = _settings_from(args)
    configure_logging(settings.log_level, settings.log_format, secrets=secret_values(settings))
    runner: Callable[[], Coroutine[Any, Any, int]]
    if args.command == "run":
        if settings.provider_mode is ProviderMode.SYNC:
            from streamproc.provider.registry import load_provider_factory, needs_provider_url

            # Asked of the provider chosen: only the `http` one calls provider_url.
            if settings.waterfall is None and needs_provider_url(
                load_provider_factory(settings.provider_name)
            ):
                settings.require_provider()

        def runner() -> Coroutine[Any, Any, int]:
            return _run(settings, args.stop_when_idle_s)
    elif args.command == "topics" and args.topics_command == "describe":

        def runner() -> Coroutine[Any, Any, int]:
            return _topics_describe(settings, as_json=args.json)
    elif args.command == "topics":

        def runner() -> Coroutine[Any, Any, int]:
            return _topics_create(settings, as_json=args.json)
    elif args.command == "group":
        group_id = args.group or settings.group_id

        def runner() -> Coroutine[Any, Any, int]:
            if args.group_command == "describe":
                return _group_describe(settings, group_id, as_json=args.json)
            return _group_reset(settings, group_id, args)
    elif args.command == "config":
        return _config_show(settings, args.json)
    elif args.command == "try":
        from streamproc.trial import read_lead

        lead_id, lead = read_lead(sys.stdin.read() if args.lead == "-" else args.lead, settings)

        def runner() -> Coroutine[Any, Any, int]:
            return _try(settings, lead_id, lead, as_json=args.json)
    elif args.command == "produce-sample":
        if args.count < 1:
            raise ConfigError("--count must be at least 1")

        def runner() -> Coroutine[Any, Any, int]:
            return _produce_sample(settings, args.count, args.mix, as_json=args.json)
    elif args.command == "replay":
        from streamproc.replay.command import options_from_args, replay_command, whole_number
        from streamproc.replay.config import ReplayConfig

        replay_options = options_from_args(args)
        metrics_port = whole_number(args.metrics_port, "--metrics-port", 0)
        if metrics_port is not None and metrics_port > 65_535:
            raise ConfigError(f"--metrics-port {metrics_port}: expected a port, 0 to 65535")

        def runner() -> Coroutine[Any, Any, int]:
            return replay_command(
                ReplayConfig.from_settings(settings),
                replay_options,
                as_json=args.json,
                show_progress=not args.no_progress,
                metrics_port=metrics_port,
            )
    elif args.command == "dlq" and args.dlq_command == "show":
        from streamproc.replay.config import ReplayConfig
        from streamproc.replay.show import dlq_show, show_options_from_args

        show_options = show_options_from_args(args)

        def runner() -> Coroutine[Any, Any, int]:
            return dlq_show(ReplayConfig.from_settings(settings), show_options, as_json=args.json)
    elif args.command == "dlq":
        from streamproc.replay.command import whole_number
        from streamproc.replay.config import ReplayConfig
        from streamproc.replay.stats import dlq_stats

        stats_attempts = whole_number(args.max_attempts, "--max-attempts", 1) or 3

        def runner() -> Coroutine[Any, Any, int]:
            return dlq_stats(
                ReplayConfig.from_settings(settings),
                as_json=args.json,
                include_all=args.all,
                max_attempts=stats_attempts,
            )
    elif args.command == "console":
        from streamproc.console.command import console_command
        from streamproc.console.config import ConsoleConfig

        def runner() -> Coroutine[Any, Any, int]:
            return console_command(ConsoleConfig.from_settings(settings))
    elif args.command == "state":

        def runner() -> Coroutine[Any, Any, int]:
            return _state_show(settings, as_json=args.json)
    elif args.command == "budget":
        _budget_args(args)

        def runner() -> Coroutine[Any, Any, int]:
            return _budget(settings, args)
    else:  # pragma: no cover - argparse rejects unknown commands
        raise ConfigError(f"unknown command {args.command}")
    if args.command in ("run", "try"):
        # run: the app runs the preflight itself, with its topics; try: no Kafka at all.
        return _run_async(runner)
    acls: list[Acl] = []
    if args.command == "replay":
        from streamproc.kafka.acls import Operation, replayer_acls

        acls = replayer_acls(settings)
        if args.dry_run:  # reads only
            acls = [acl for acl in acls if acl.operation is not Operation.WRITE]
    return _run_async(functools.partial(_after_preflight, settings, runner, acls))


async def _after_preflight(
    settings: Settings,
    runner: Callable[[], Coroutine[Any, Any, int]],
    acls: list[Acl] | None = None,
) -> int:
    """Every Kafka command first proves the broker reachable and our credentials accepted,
    so that a dead broker, a wrong CA or password is one line naming the setting (within
    ``kafka_connect_timeout_s``), the same for every command."""
    from streamproc.kafka.preflight import check_kafka

    await check_kafka(settings, settings.kafka_connect_timeout_s, acls=acls or ())
    return await runner()


def _run_async(runner: Callable[[], Coroutine[Any, Any, int]]) -> int:
    with contextlib.suppress(ImportError):
        import uvloop

        return int(uvloop.run(runner()))
    return asyncio.run(runner())


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    try:
        return _dispatch(parser.parse_args(argv))
    except ConfigError as exc:
        print(f"streamproc: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KafkaSetupError as exc:
        print(f"streamproc: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    except StreamprocError as exc:
        print(f"streamproc: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    os._exit(main())
