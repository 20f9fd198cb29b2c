"""Value classes for the modules every `pitstop --list` imports, made without `dataclasses`.

`@record` gives a class what `@dataclass(frozen=True)` gave it, as far as pitstop uses it:
an `__init__` taking the annotated fields in order (defaults and `field(default_factory=...)`
as in dataclasses), `__eq__` and `__hash__` over the compared fields, a dataclass-style
`__repr__`, `__match_args__`, and assignment refused. `replace(obj, **changes)` copies one.

Why not dataclasses: importing it pulls in `inspect`, `ast` and `dis` (~6 ms), and each
class costs it five or six generated methods compiled with `exec` (~8 ms for the task
file model's 19 classes); that was a third of `pitstop --list`'s start-up. Here only
`__init__` is generated (one small `exec` per class, ~0.1 ms, at its first instance);
the other methods are shared closures.

Limits, checked where cheap: no inheritance between records, no ClassVar fields, no
`__post_init__`. Code off the start-up path keeps using dataclasses.
"""

from __future__ import annotations

from operator import attrgetter

# Not typing's: `pitstop --list` does not import typing (~2.5 ms); mypy honours the name.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform, overload

    _T = TypeVar("_T")
    _C = TypeVar("_C", bound=type)
else:

    def overload(function: object) -> object:
        return function  # the last definition replaces the overloads, as with typing's

    def dataclass_transform(**_parameters: object) -> object:
        return lambda function: function  # only type checkers read it


class _Field:
    """What `field()` leaves in the class body until `@record` reads it."""

    __slots__ = ("compare", "default_factory")

    def __init__(self, default_factory: Callable[[], object], compare: bool) -> None:
        self.default_factory = default_factory
        self.compare = compare


def field(*, default_factory: Callable[[], _T], compare: bool = True) -> _T:
    """A field whose default is made per instance; `compare=False` leaves it out of == and hash."""
    return _Field(default_factory, compare)  # type: ignore[return-value]


_NO_VALUE = object()


# (noqa: F811 below: to ruff, the runtime `overload` above is not typing's; mypy sees typing's.)
@overload
def record(cls: _C, /) -> _C: ...
@overload
def record(*, frozen: bool = True) -> Callable[[_C], _C]: ...  # noqa: F811


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def record(cls: type | None = None, /, *, frozen: bool = True) -> Any:  # noqa: F811
    """`@record` or `@record(frozen=False)`; see the module docstring."""

    def wrap(cls: type) -> type:
        return _build(cls, frozen)

    return wrap if cls is None else wrap(cls)


def fields(cls: type) -> tuple[str, ...]:
    """The field names of record class `cls`, in order."""
    names: tuple[str, ...] = cls.__record_fields__  # type: ignore[attr-defined]
    return names


def replace(obj: _T, /, **changes: Any) -> _T:
    """A copy of record `obj` with `changes`, like dataclasses.replace.

    Records have no `__post_init__` and every field is an init field, so copying the
    instance dict gives what calling `__init__` with every field would.
    """
    cls = obj.__class__
    unknown = changes.keys() - cls.__record_field_set__  # type: ignore[attr-defined]
    if unknown:
        raise TypeError(f"{cls.__name__} has no field(s) {', '.join(sorted(unknown))}")
    new = object.__new__(cls)
    new.__dict__.update(obj.__dict__)
    new.__dict__.update(changes)
    return new


def _build(cls: type, frozen: bool) -> type:
    if any(hasattr(base, "__record_fields__") for base in cls.__mro__[1:]):
        raise TypeError(f"{cls.__name__}: records do not inherit from records")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: records have no __post_init__")
    # Not inspect.get_annotations: importing inspect is the cost this module avoids.
    annotations: dict[str, object] = cls.__dict__.get("__annotations__", {})  # noqa: RUF063
    names = tuple(annotations)
    if any(str(annotations[n]).startswith(("ClassVar", "typing.ClassVar")) for n in names):
        raise TypeError(f"{cls.__name__}: records take no ClassVar")
    compared: list[str] = []
    params: list[str] = []
    namespace: dict[str, object] = {"_NO_VALUE": _NO_VALUE}
    body: list[str] = []
    for name in names:
        value = cls.__dict__.get(name, _NO_VALUE)
        if isinstance(value, _Field):
            delattr(cls, name)
            namespace[f"_factory_{name}"] = value.default_factory
            params.append(f"{name}=_NO_VALUE")
            body.append(f"    if {name} is _NO_VALUE:\n        {name} = _factory_{name}()\n")
            if value.compare:
                compared.append(name)
            continue
        compared.append(name)
        if value is _NO_VALUE:
            if params and params[-1].count("="):
                raise TypeError(f"{cls.__name__}: field {name} without a default follows one with")
            params.append(name)
        else:
            namespace[f"_default_{name}"] = value
            params.append(f"{name}=_default_{name}")
    # Fields left at a plain default (not a factory's) are not pickled: the class attribute
    # of the same name is that very default, so the loaded instance reads the same value.
    # A 10,000-task file's cache entry loads in a third less time (docs/benchmarks.md).
    defaults = {
        name: value
        for name in names
        if (value := cls.__dict__.get(name, _NO_VALUE)) is not _NO_VALUE
        and not isinstance(value, _Field)
    }
    assignments = ", ".join(f"{name!r}: {name}" for name in names)
    source = (
        f"def __init__(self, {', '.join(params)}) -> None:\n"
        + "".join(body)
        + f"    self.__dict__.update({{{assignments}}})\n"
    )

    def init(self: object, *args: object, **kwargs: object) -> None:
        """Compiles the real __init__ on the first instance, then steps aside.

        Most classes of the model are never instantiated by a given command (`--list` makes
        tasks, not env scripts), so they never pay for the compile.
        """
        exec(source, namespace)
        real: Any = namespace["__init__"]
        real.__qualname__ = f"{cls.__qualname__}.__init__"
        type.__setattr__(cls, "__init__", real)
        real(self, *args, **kwargs)

    key: Callable[[Any], object] = attrgetter(*compared) if compared else (lambda _self: ())

    def __eq__(self: object, other: object) -> bool:
        if other.__class__ is self.__class__:
            return bool(key(self) == key(other))
        return NotImplemented

    def __repr__(self: object) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{self.__class__.__qualname__}({shown})"

    def __getstate__(self: object) -> dict[str, object]:
        return {
            name: value
            for name, value in self.__dict__.items()
            if defaults.get(name, _NO_VALUE) is not value
        }

    methods: dict[str, object] = {
        "__init__": init,
        "__getstate__": __getstate__,
        "__eq__": __eq__,
        "__repr__": __repr__,
        "__match_args__": names,
        "__record_fields__": names,
        "__record_field_set__": frozenset(names),
    }
    if frozen:

        def __hash__(self: object) -> int:
            return hash(key(self))

        def __setattr__(self: object, name: str, value: object) -> None:
            raise AttributeError(f"cannot assign to field {name!r}: {cls.__name__} is immutable")

        def __delattr__(self: object, name: str) -> None:
            raise AttributeError(f"cannot delete field {name!r}: {cls.__name__} is immutable")

        methods.update(__hash__=__hash__, __setattr__=__setattr__, __delattr__=__delattr__)
    else:
        methods["__hash__"] = None  # mutable and compared by value, as dataclass(eq=True)
    for attribute, value in methods.items():
        if attribute in cls.__dict__ and attribute not in ("__hash__",):
            raise TypeError(f"{cls.__name__} defines {attribute} itself")
        setattr(cls, attribute, value)
    return cls
