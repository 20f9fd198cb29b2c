"""Watch mode: file events -> filtered, debounced batches -> runs, one at a time.

The pieces, each usable alone (import them from their modules; this file imports nothing,
so that importing one piece does not load the others)::

    filters.py, ignore.py   which paths matter (PathFilter)
    changes.py              watchfiles -> async iterator of frozenset[Path] batches;
                            the batch -> PITSTOP_CHANGED_PATHS(_FILE) for the child
    loop.py                 batches + key presses -> run_once calls, WatchEvents out
    keys.py                 Enter/r -> trigger_now, q -> stop

Nothing here imports watchfiles until a change source is iterated.
"""
