"""The CLI's habits from Kafka's own tools: per-command help, shell completion."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from streamproc.cli import _build_parser, main
from streamproc.completion import completion_script


def _help(capsys: pytest.CaptureFixture[str], *words: str) -> str:
    with pytest.raises(SystemExit):
        main([*words, "--help"])
    return capsys.readouterr().out


def test_help_lists_only_the_settings_a_command_reads(capsys: pytest.CaptureFixture[str]) -> None:
    """`topics create --help` has the Kafka flags and none of Clay's, the provider's or
    tracing's; `run --help` has them all."""
    create = _help(capsys, "topics", "create")
    assert "--bootstrap-servers" in create and "--topic-replication-factor" in create
    for flag in ("--clay-webhook-urls", "--provider-url", "--tracing-enabled", "--cache-key"):
        assert flag not in create
    run = _help(capsys, "run")
    for flag in ("--clay-webhook-urls", "--provider-url", "--tracing-enabled", "--start-offset"):
        assert flag in run
    assert len(create.splitlines()) < len(run.splitlines()) / 3


def test_a_flag_of_another_section_is_refused_by_a_narrow_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A setting the command does not read is an unknown flag there (argparse's exit 2)."""
    with pytest.raises(SystemExit) as exit_:
        main(["topics", "create", "--provider-url", "http://x/enrich"])
    assert exit_.value.code == 2
    assert "--provider-url" in capsys.readouterr().err


def _complete(script: str, *words: str) -> list[str]:
    """What bash completes after ``words`` (the last one the word being typed)."""
    line = " ".join(f"'{w}'" for w in ("streamproc", *words))
    program = (
        f"{script}\nCOMP_WORDS=({line}); COMP_CWORD={len(words)}; _streamproc; "
        'printf "%s\\n" "${COMPREPLY[@]}"'
    )
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True)
    return done.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash on this machine")
def test_bash_completion_follows_the_parser() -> None:
    """Commands, actions and each command's own flags complete in bash."""
    script = completion_script(_build_parser(), "bash")
    assert {"run", "topics", "group", "dlq", "completion"} <= set(_complete(script, ""))
    assert {"create", "describe"} <= set(_complete(script, "topics", ""))
    assert _complete(script, "topics", "create", "--boot") == ["--bootstrap-servers"]
    assert _complete(script, "topics", "create", "--provider-u") == []
    assert _complete(script, "run", "--provider-u") == ["--provider-url"]
    assert "--to-datetime" in _complete(script, "group", "reset-offsets", "--to")


def test_zsh_script_loads_bashcompinit(capsys: pytest.CaptureFixture[str]) -> None:
    """`completion zsh` is the bash function behind zsh's bashcompinit."""
    assert main(["completion", "zsh"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].startswith("autoload -U +X bashcompinit")
    assert "complete -F _streamproc streamproc" in out
