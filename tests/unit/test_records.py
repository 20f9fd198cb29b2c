"""pitstop.records: the frozen value classes of the task file model, and their pickling."""

from __future__ import annotations

import _pickle
from pathlib import Path

import pytest

from pitstop import records
from pitstop.errors import Location
from pitstop.records import field, record
from pitstop.taskfile import builtins
from pitstop.taskfile.model import Config, EnvUnset, ScriptSections, Task, Taskfile


@record
class Point:
    x: int
    y: int = 0
    tags: list[str] = field(default_factory=list, compare=False)


@record(frozen=False)
class Box:
    items: list[int] = field(default_factory=list)


def test_a_record_takes_fields_in_order_with_defaults_and_fresh_factories() -> None:
    a, b = Point(1), Point(1)
    assert (a.x, a.y, a.tags) == (1, 0, [])
    assert a.tags is not b.tags
    assert Point(2, 3).y == 3 and Point(x=2, y=4).y == 4
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, z=2)  # type: ignore[call-arg]


def test_equality_and_hash_follow_the_compared_fields_and_the_class() -> None:
    assert Point(1, 2, ["a"]) == Point(1, 2, ["b"])
    assert hash(Point(1, 2, ["a"])) == hash(Point(1, 2))
    assert Point(1, 2) != Point(1, 3)
    assert EnvUnset() == EnvUnset() and hash(EnvUnset()) == hash(EnvUnset())
    unset: object = EnvUnset()
    assert unset != ScriptSections()  # both empty: the class tells them apart


def test_a_frozen_record_refuses_assignment_and_a_mutable_one_is_unhashable() -> None:
    point = Point(1)
    with pytest.raises(AttributeError, match="immutable"):
        point.x = 2  # type: ignore[misc]
    with pytest.raises(AttributeError, match="immutable"):
        del point.x
    box = Box()
    box.items = [1]
    assert box == Box([1])
    with pytest.raises(TypeError):
        hash(box)


def test_repr_and_match_args_read_like_a_dataclass() -> None:
    assert repr(Point(1, 2)) == "Point(x=1, y=2, tags=[])"
    match Point(5, 6):
        case Point(x, y):
            assert (x, y) == (5, 6)


def test_replace_copies_with_changes_and_refuses_unknown_fields() -> None:
    config = Config(jobs=2)
    changed = records.replace(config, jobs=3, end_task=None)
    assert (changed.jobs, changed.end_task, changed.init_task) == (3, None, "init")
    assert config.jobs == 2
    with pytest.raises(TypeError, match="no field"):
        records.replace(config, job=3)
    assert records.fields(Point) == ("x", "y", "tags")


def test_a_task_survives_pickling_with_its_locations() -> None:
    where = Location(Path("Makefile.toml"), 3, 1)
    task = Task("build", where, command="make", key_locations={"command": where})
    copy = _pickle.loads(_pickle.dumps(task, protocol=5))
    assert copy == task and copy.where("command") == where


def test_a_pickled_record_leaves_out_its_plain_defaults() -> None:
    # The task file cache: what is left out is read back from the class, the same object.
    where = Location(Path("Makefile.toml"), 3, 1)
    task = Task("build", where, command="make", private=False)
    state = task.__getstate__()
    assert set(state) == {"name", "location", "command", "private", "key_locations"}
    copy = _pickle.loads(_pickle.dumps(task, protocol=5))
    assert copy == task
    assert (copy.script, copy.private, copy.dependencies, copy.key_locations) == (
        None,
        False,
        None,
        {},
    )
    changed = copy.replace(script=None, cwd="sub")
    assert (changed.cwd, changed.command, changed.script) == ("sub", "make", None)


def test_the_core_task_cache_is_read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A Location that could not be unpickled once made every read miss, silently.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    core = builtins.core_taskfile.__wrapped__()
    key = builtins._cache_key(builtins.CORE_PATH.read_bytes())
    cached = builtins._read_cache(key)
    assert isinstance(cached, Taskfile)
    assert cached.tasks == core.tasks
