"""pitstop: a cargo-make compatible task runner, file watcher and zero-downtime service supervisor."""

__version__ = "0.1.0"
