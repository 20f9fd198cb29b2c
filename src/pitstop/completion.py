"""Shell completion scripts: every flag, the subcommands, task names (`pitstop --task-names`)
and, after `up` and the verbs that name services, service names (`pitstop --service-names`).

Install with e.g. `pitstop --completions bash > ~/.local/share/bash-completion/completions/pitstop`,
`pitstop --completions zsh > "${fpath[1]}/_pitstop"`, or
`pitstop --completions fish > ~/.config/fish/completions/pitstop.fish`.

The flags come from the command line's own argparse parsers (`pitstop.cli`), so a new flag is
offered without anyone remembering to list it here; flags hidden from --help stay hidden.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Literal

Kind = Literal["file", "dir", "task", "choice", "other"]

_TASK_NAMES = "pitstop --task-names 2>/dev/null"
_SERVICE_NAMES = "pitstop --service-names 2>/dev/null"
# Subcommands that take service names (tasks with a service table) after them.
_TAKE_SERVICES = ("up", "logs", "restart", "stop", "start", "rollback")


@dataclass(frozen=True)
class Option:
    names: tuple[str, ...]  # -f, --makefile
    help: str
    value: Kind | None = None  # None: a switch
    choices: tuple[str, ...] = ()

    @property
    def long(self) -> list[str]:
        return [n[2:] for n in self.names if n.startswith("--")]

    @property
    def short(self) -> list[str]:
        return [n[1:] for n in self.names if not n.startswith("--")]


def options_of(parser: argparse.ArgumentParser) -> list[Option]:
    """The parser's flags as completion sees them (hidden ones left out)."""
    found = []
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        found.append(
            Option(
                tuple(action.option_strings),
                _first_line(action.help or ""),
                _kind(action),
                tuple(str(c) for c in action.choices or ()),
            )
        )
    return found


def _kind(action: argparse.Action) -> Kind | None:
    if action.nargs == 0:
        return None
    if action.choices:
        return "choice"
    metavar = str(action.metavar or "")
    if metavar in ("FILE", "PATH"):
        return "file"
    if metavar == "DIR":
        return "dir"
    if metavar == "TASK":
        return "task"
    return "other"


def _first_line(text: str) -> str:
    return text.split("\n")[0].replace("%%", "%").replace("'", "").replace("`", "")


def completion_script(
    shell: str,
    main_parser: argparse.ArgumentParser,
    subcommands: dict[str, tuple[argparse.ArgumentParser, str]],
) -> str:
    """The script for `shell`, from pitstop's parser and each subcommand's (parser, one-line
    help); `cli` passes them, so that this module needs nothing from it."""
    main = options_of(main_parser)
    subs = {name: options_of(parser) for name, (parser, _) in subcommands.items()}
    helps = {name: help_text for name, (_, help_text) in subcommands.items()}
    if shell == "bash":
        return _bash(main, subs)
    if shell == "zsh":
        return _zsh(main, subs)
    return _fish(main, subs, helps)


# ---------------------------------------------------------------------------- bash and zsh


def _value_cases(options: list[Option], shell: str) -> list[str]:
    """`case "$prev"` arms: what the value of each flag that takes one completes to."""
    arms = []
    for option in options:
        if option.value is None:
            continue
        pattern = "|".join(option.names)
        if shell == "bash":
            action = {
                "file": 'COMPREPLY=( $(compgen -f -- "$cur") )',
                "dir": 'COMPREPLY=( $(compgen -d -- "$cur") )',
                "task": f'COMPREPLY=( $(compgen -W "$({_TASK_NAMES})" -- "$cur") )',
                "choice": f'COMPREPLY=( $(compgen -W "{" ".join(option.choices)}" -- "$cur") )',
                "other": "COMPREPLY=()",
            }[option.value]
        else:
            action = {
                "file": "_files",
                "dir": "_files -/",
                "task": f'compadd -- ${{(f)"$({_TASK_NAMES})"}}',
                "choice": f"compadd -- {' '.join(option.choices)}",
                "other": ":",
            }[option.value]
        arms.append(f"            {pattern}) {action}; return ;;")
    return arms


def _skip_pattern(options: list[Option]) -> str:
    """Flags whose next word is their value (not a task or subcommand)."""
    names = [n for o in options if o.value is not None for n in o.names]
    return "|".join(names)


def _flags(options: list[Option]) -> str:
    return " ".join(n for o in options for n in o.names)


def _sub_arms(subs: dict[str, list[Option]], shell: str) -> list[str]:
    lines = []
    for sub, options in subs.items():
        words = f"$({_SERVICE_NAMES})" if sub in _TAKE_SERVICES else ""
        lines.append(f"        {sub})")
        lines.append('            case "$prev" in')
        lines.extend("    " + arm for arm in _value_cases(options, shell))
        lines.append("            esac")
        if shell == "bash":
            lines.append(f'            _pitstop_words "{_flags(options)}" "{words}" ;;')
        else:
            lines.append(f"            _pitstop_words '{_flags(options)}' \"{words}\" ;;")
    return lines


_BASH = """# bash completion for pitstop
_pitstop_words() {
    if [[ "$cur" == -* ]]; then
        COMPREPLY=( $(compgen -W "$1" -- "$cur") )
    else
        COMPREPLY=( $(compgen -W "$2" -- "$cur") )
    fi
}
_pitstop() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" sub="" i
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${COMP_WORDS[i]}" in
            SKIP) ((i++)) ;;
            -*) ;;
            SUBS) sub="${COMP_WORDS[i]}"; break ;;
            *) sub=task; break ;;
        esac
    done
    case "$sub" in
        task) COMPREPLY=( $(compgen -f -- "$cur") ) ;;  # the task's own arguments
ARMS
        *)
            case "$prev" in
VALUES
            esac
            _pitstop_words "FLAGS" "$(TASKS) SUBS_WORDS" ;;
    esac
}
complete -F _pitstop pitstop
"""

_ZSH = """#compdef pitstop
_pitstop_words() {
    if [[ "$cur" == -* ]]; then
        compadd -- ${=1}
    else
        compadd -- ${(f)2} ${=3}
    fi
}
_pitstop() {
    local cur="${words[CURRENT]}" prev="${words[CURRENT-1]}" sub="" i
    for ((i = 2; i < CURRENT; i++)); do
        case "${words[i]}" in
            SKIP) ((i++)) ;;
            -*) ;;
            SUBS) sub="${words[i]}"; break ;;
            *) sub=task; break ;;
        esac
    done
    case "$sub" in
        task) _files ;;  # the task's own arguments
ARMS
        *)
            case "$prev" in
VALUES
            esac
            _pitstop_words 'FLAGS' "$(TASKS)" 'SUBS_WORDS' ;;
    esac
}
compdef _pitstop pitstop
"""


def _bash(main: list[Option], subs: dict[str, list[Option]]) -> str:
    return _fill(_BASH, main, subs, "bash")


def _zsh(main: list[Option], subs: dict[str, list[Option]]) -> str:
    return _fill(_ZSH, main, subs, "zsh")


def _fill(template: str, main: list[Option], subs: dict[str, list[Option]], shell: str) -> str:
    return (
        template.replace("SKIP", _skip_pattern(main))
        .replace("SUBS_WORDS", " ".join(subs))
        .replace("SUBS", "|".join(subs))
        .replace("ARMS", "\n".join(_sub_arms(subs, shell)))
        .replace("VALUES", "\n".join("    " + arm for arm in _value_cases(main, shell)))
        .replace("FLAGS", _flags(main))
        .replace("TASKS", _TASK_NAMES)
    )


# ---------------------------------------------------------------------------- fish


def _fish(main: list[Option], subs: dict[str, list[Option]], helps: dict[str, str]) -> str:
    verbs = " ".join(subs)
    top = f"not __fish_seen_subcommand_from {verbs}"
    lines = [
        "# fish completion for pitstop",
        "complete -c pitstop -f",
        f"complete -c pitstop -n '{top}' -a '({_TASK_NAMES})'",
    ]
    lines += [
        f"complete -c pitstop -n '{top}' -a {sub} -d '{_first_line(helps.get(sub, sub))}'"
        for sub in subs
    ]
    lines += [_fish_option(option, top) for option in main]
    for sub, options in subs.items():
        seen = f"__fish_seen_subcommand_from {sub}"
        if sub in _TAKE_SERVICES:
            lines.append(f"complete -c pitstop -n '{seen}' -a '({_SERVICE_NAMES})'")
        lines += [_fish_option(option, seen) for option in options]
    return "\n".join(lines) + "\n"


def _fish_option(option: Option, condition: str) -> str:
    parts = [f"complete -c pitstop -n '{condition}'"]
    parts += [f"-l {name}" for name in option.long]
    parts += [f"-s {name}" for name in option.short]
    match option.value:
        case "file":
            parts.append("-r -F")
        case "dir":
            parts.append("-x -a '(__fish_complete_directories)'")
        case "task":
            parts.append(f"-x -a '({_TASK_NAMES})'")
        case "choice":
            parts.append(f"-x -a '{' '.join(option.choices)}'")
        case "other":
            parts.append("-x")
    if option.help:
        parts.append(f"-d '{option.help}'")
    return " ".join(parts)
