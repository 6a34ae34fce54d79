"""``python -m bench [--quick] [--only a,b] [--processes 2] [--soak] [--profile py-spy]``."""

from __future__ import annotations

import asyncio
import shlex
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from rich.console import Console

from bench.config import BenchConfig, parse_args
from bench.report import machine, parameters_text, render, targets, to_markdown, write_json
from bench.runner import Bench


async def run(cfg: BenchConfig, console: Console) -> dict[str, Any]:
    """Run every selected scenario; write the JSON and Markdown results; return the JSON."""

    def log(text: str) -> None:
        console.print(text, highlight=False, markup=False)

    async with Bench(cfg, log=log) as bench:
        rows = await bench.run()
        meta: dict[str, Any] = {
            "started": bench.started.isoformat(timespec="seconds"),
            "command": "python -m bench " + shlex.join(sys.argv[1:]),
            "machine": machine(),
            "parameters": asdict(cfg),
            "parameters_text": parameters_text(cfg),
            "provider_url": bench.provider_url,
            "logs": str(bench.work),
        }
        payload = {
            **meta,
            "rows": [row.to_json() for row in rows],
            "targets": targets(rows, cfg),
            "profile": bench.profile,
        }
        stem = cfg.results_dir / f"{bench.stamp}-{bench.run_id}"
        write_json(stem.with_suffix(".json"), payload)
        stem.with_suffix(".md").write_text(to_markdown(rows, cfg, meta, bench.profile))
        render(rows, cfg, console)
        console.print(f"results: {stem}.json and {stem}.md (logs in {bench.work})")
        return payload


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    console = Console(width=200)
    asyncio.run(run(cfg, console))
    return 0


if __name__ == "__main__":
    sys.exit(main())
