"""Services with zero-downtime swaps: build while the old version serves, then hand over.

The app drives a `Supervisor` (import each name from its module; this file imports nothing,
so that importing `supervisor.sockets` does not load the supervisor)::

    spec = task.service        # a ServiceSpec (taskfile/service.py), checked when the file loaded
    sup = Supervisor(spec, InstanceCommand(argv, cwd, env), build, on_event)  # supervisor.py
    await sup.start()          # build, first instance
    sup.changed(paths)         # from the watcher: rebuild and swap
    await sup.stop()           # everything stopped, addresses free

frontends.py puts instances behind the public address (socket hand-off or the proxy);
instance.py, readiness.py, notify.py and sockets.py start one instance and see it ready.
"""
