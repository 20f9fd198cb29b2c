"""A tiny module for the task-runner example."""


def greet(name: str) -> str:
    return f"hello, {name}"
