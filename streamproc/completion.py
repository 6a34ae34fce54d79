"""Shell completion for ``streamproc``, generated from the CLI's own parser.

The script is a table, not logic: for every command path (``"streamproc"``,
``"streamproc topics"``, ``"streamproc topics create"``) the words that may follow, read
from argparse when the script is printed, so a new command or setting completes without
anyone editing a script. zsh runs the same bash function through ``bashcompinit``.
"""

from __future__ import annotations

import argparse
import shlex

__all__ = ["completion_script", "subcommands"]

#: The key of the top level: bash refuses an empty key in an associative array.
_ROOT = "streamproc"


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subcommands of ``parser`` by name (empty for a command that takes none)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return sorted(
        option
        for action in parser._actions
        if action.help is not argparse.SUPPRESS
        for option in action.option_strings
        if option.startswith("--")
    )


def _table(
    parser: argparse.ArgumentParser, path: str, words: dict[str, str], commands: dict[str, str]
) -> None:
    subs = subcommands(parser)
    commands[path] = " ".join(subs)
    words[path] = " ".join([*subs, *_options(parser)])
    for name, child in subs.items():
        _table(child, f"{path} {name}", words, commands)


def completion_script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script for ``shell`` (``bash`` or ``zsh``)."""
    words: dict[str, str] = {}
    commands: dict[str, str] = {}
    _table(parser, _ROOT, words, commands)

    def assoc(name: str, table: dict[str, str]) -> str:
        rows = "\n".join(f"  [{shlex.quote(k)}]={shlex.quote(v)}" for k, v in table.items())
        return f"declare -gA {name}=(\n{rows}\n)"

    prelude = "autoload -U +X bashcompinit && bashcompinit\n" if shell == "zsh" else ""
    return f"""# streamproc {shell} completion: source <(streamproc completion {shell})
{prelude}{assoc("_streamproc_words", words)}
{assoc("_streamproc_commands", commands)}
_streamproc() {{
  local cur=${{COMP_WORDS[COMP_CWORD]}} path={_ROOT} i w
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=${{COMP_WORDS[i]}}
    case " ${{_streamproc_commands[$path]}} " in
      *" $w "*) path="$path $w" ;;
    esac
  done
  COMPREPLY=($(compgen -W "${{_streamproc_words[$path]}}" -- "$cur"))
}}
complete -F _streamproc streamproc
"""
