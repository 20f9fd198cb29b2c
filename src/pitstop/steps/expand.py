"""`${NAME}` / `${NAME:default}` expansion, exactly as cargo-make does it.

cargo-make expands with envmnt's `UnixBracketsWithDefaults` and `default_to_empty = false`
(SEMANTICS §6.4). This module ports envmnt's character scanner rather than using a regex,
because the scanner's edge cases are observable in makefiles: an unset `${NAME}` stays
literal, a default is used only when NAME is unset, a space or `=` inside the braces aborts
the reference, and substituted values are never expanded again (single pass).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

_PREFIX = "${"
_SUFFIX = "}"
# Characters that end a reference early. While reading the name a space and `=` also break;
# inside a default only line breaks and tabs do (envmnt `should_break_key`).
_BREAK_ALWAYS = frozenset("\n\t\r")
_BREAK_IN_NAME = frozenset(" =")

TASK_ARGS_PLACEHOLDER = "${@}"


def expand(text: str, env: Mapping[str, str]) -> str:
    """Expand `${NAME}` and `${NAME:default}` in `text` from `env`, in one pass."""
    if _PREFIX not in text:
        return text
    out: list[str] = []
    matched = 0  # how many characters of the prefix have been seen
    in_ref = False
    reading_default = False
    name: list[str] = []
    default: list[str] = []

    def unfinished() -> str:
        tail = _PREFIX + "".join(name)
        return tail + ":" + "".join(default) if reading_default else tail

    for ch in text:
        if not in_ref:
            if ch == _PREFIX[matched]:
                matched += 1
                if matched == len(_PREFIX):
                    in_ref, matched = True, 0
                    name.clear()
            else:
                # envmnt emits the partial prefix and this character without re-scanning it.
                out.append(_PREFIX[:matched])
                matched = 0
                out.append(ch)
        elif not reading_default and ch == ":":
            reading_default = True
        elif ch == _SUFFIX:
            key = "".join(name)
            if key in env:
                out.append(env[key])
            elif reading_default:
                out.append("".join(default))
            else:
                out.append(_PREFIX + key + _SUFFIX)
            in_ref, reading_default = False, False
            name.clear()
            default.clear()
        elif ch in _BREAK_ALWAYS or (not reading_default and ch in _BREAK_IN_NAME):
            out.append(unfinished())
            out.append(ch)
            in_ref, reading_default = False, False
            name.clear()
            default.clear()
        elif reading_default:
            default.append(ch)
        else:
            name.append(ch)
    # An unterminated reference is kept as written. (envmnt drops a trailing `$` or `${`
    # with no name; keeping the text is the only sane reading and no makefile relies on it.)
    if in_ref:
        out.append(unfinished())
    elif matched:
        out.append(_PREFIX[:matched])
    return "".join(out)


def task_args_from_env(env: Mapping[str, str]) -> list[str]:
    """The CLI task arguments as cargo-make re-reads them: `CARGO_MAKE_TASK_ARGS` split on `;`."""
    value = env.get("CARGO_MAKE_TASK_ARGS", "")
    return value.split(";") if value else []


def expand_args(args: Sequence[str], env: Mapping[str, str], task_args: Sequence[str]) -> list[str]:
    """Expand a task's `args`: `${@}` first (per task argument), then `${}` in every result.

    An argument equal to `${@}` becomes all task arguments; one that contains `${@}` is
    repeated once per task argument with the placeholder replaced; with no task arguments
    both disappear (`expand_env_for_arguments`).
    """
    spread: list[str] = []
    for arg in args:
        if TASK_ARGS_PLACEHOLDER not in arg:
            spread.append(arg)
        elif arg == TASK_ARGS_PLACEHOLDER:
            spread.extend(task_args)
        else:
            spread.extend(arg.replace(TASK_ARGS_PLACEHOLDER, t) for t in task_args)
    return [expand(arg, env) for arg in spread]
