"""How messages about a task file name its keys and describe its values."""

from __future__ import annotations

from pitstop.taskfile.locate import KeyPath


def dotted(key_path: KeyPath) -> str:
    """("dependencies", 1) → "dependencies[1]"; ("env", "X") → "env.X"."""
    text = ""
    for part in key_path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


def type_name(value: object) -> str:
    names = {str: "a string", bool: "a boolean", int: "an integer", float: "a number"}
    for kind, name in names.items():
        if type(value) is kind:
            return name
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"
