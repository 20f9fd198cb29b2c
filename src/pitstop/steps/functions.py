"""cargo-make's argument functions: `@@split`, `@@remove-empty`, `@@trim`, `@@getat`, `@@decode`.

An argument that is exactly `@@name(a, b, ...)` is replaced by the function's result, which
may be zero or more arguments (SEMANTICS §6.6, `functions/mod.rs`). They run on `args` only,
before `${}` expansion. Anything that does not parse as a call is left as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from pitstop.errors import Location, UserError
from pitstop.steps.expand import expand

_Function = Callable[[list[str], Mapping[str, str]], list[str]]


class FunctionError(UserError):
    """An `@@function(...)` argument cannot be evaluated (unknown name, bad arguments)."""


def _arity(name: str, args: list[str], low: int, high: int) -> None:
    if not low <= len(args) <= high:
        wanted = str(low) if low == high else f"{low} to {high}"
        raise ValueError(f"@@{name} takes {wanted} argument(s), got {len(args)}")


def _separator(name: str, value: str) -> str:
    if len(value) != 1:
        raise ValueError(f"@@{name} needs a single-character separator, got {value!r}")
    return value


def _split(args: list[str], env: Mapping[str, str]) -> list[str]:
    _arity("split", args, 2, 3)
    sep = _separator("split", args[1])
    value = env.get(args[0], "")
    if not value:
        return []
    parts = value.split(sep)
    if len(args) == 3:
        if args[2] != "remove-empty":
            raise ValueError(f"@@split's third argument must be 'remove-empty', got {args[2]!r}")
        parts = [p for p in parts if p]
    return parts


def _remove_empty(args: list[str], env: Mapping[str, str]) -> list[str]:
    _arity("remove-empty", args, 1, 1)
    value = env.get(args[0], "")
    return [value] if value else []


def _trim(args: list[str], env: Mapping[str, str]) -> list[str]:
    _arity("trim", args, 1, 2)
    value = env.get(args[0], "")
    mode = args[1] if len(args) == 2 else "both"
    if mode == "both":
        value = value.strip()
    elif mode == "start":
        value = value.lstrip()
    elif mode == "end":
        value = value.rstrip()
    else:
        raise ValueError(f"@@trim's second argument must be 'start' or 'end', got {mode!r}")
    return [value] if value else []


def _getat(args: list[str], env: Mapping[str, str]) -> list[str]:
    _arity("getat", args, 3, 3)
    sep = _separator("getat", args[1])
    try:
        index = int(args[2])
    except ValueError:
        raise ValueError(f"@@getat's index must be a number, got {args[2]!r}") from None
    if index < 0:
        raise ValueError(f"@@getat's index must not be negative, got {index}")
    parts = env.get(args[0], "").split(sep)
    # cargo-make returns nothing when the value is shorter than the index (and panics when
    # the index is past the last part); both give no argument here.
    return [parts[index]] if index < len(parts) and len(env.get(args[0], "")) > index else []


def _decode(args: list[str], env: Mapping[str, str]) -> list[str]:
    if not args:
        raise ValueError("@@decode takes at least 1 argument (the variable name)")
    value = env.get(args[0], "")
    pairs = args[1:]
    result: str | None = None
    for i in range(0, len(pairs) - 1, 2):
        if pairs[i] == value:
            result = pairs[i + 1]
            break
    if result is None:
        # An odd number of mapping items means the last one is the default.
        result = pairs[-1] if len(pairs) % 2 == 1 else value
    result = expand(result, env)
    return [result] if result else []


FUNCTIONS: dict[str, _Function] = {
    "split": _split,
    "remove-empty": _remove_empty,
    "trim": _trim,
    "getat": _getat,
    "decode": _decode,
}


def parse_call(arg: str) -> tuple[str, list[str]] | None:
    """`@@name(a, b)` → ("name", ["a", "b"]); None when `arg` is not a function call."""
    if not arg.startswith("@@"):
        return None
    body = arg[2:]
    paren = body.find("(")
    if paren < 0 or not body.endswith(")"):
        return None
    name, inner = body[:paren], body[paren + 1 : -1]
    if not inner:
        return name, []
    # cargo-make trims each argument unless it is a single character (so `@@split(X, )`
    # splits on a space).
    return name, [a if len(a) == 1 else a.strip() for a in inner.split(",")]


def run_function(arg: str, env: Mapping[str, str], location: Location | None = None) -> list[str]:
    """The arguments `arg` turns into: itself, or the function's result."""
    call = parse_call(arg)
    if call is None:
        return [arg]
    name, fargs = call
    func = FUNCTIONS.get(name)
    if func is None:
        raise FunctionError(
            f"unknown function '@@{name}' in argument {arg!r}",
            location,
            hint="known functions: " + ", ".join(f"@@{n}" for n in FUNCTIONS),
        )
    try:
        return func(fargs, env)
    except ValueError as error:
        raise FunctionError(f"{error} (in argument {arg!r})", location) from None


def run_functions(
    args: Sequence[str], env: Mapping[str, str], location: Location | None = None
) -> list[str]:
    """Apply `run_function` to every argument and flatten the results."""
    out: list[str] = []
    for arg in args:
        out.extend(run_function(arg, env, location))
    return out
