"""Run a Supervisor over fd_app.py in this process, for the test that SIGKILLs pitstop.

    python supervise.py DIR

Prints `SERVING <instance pid> <port>` once the first instance serves, then runs until killed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from pitstop.errors import Location
from pitstop.supervisor.instance import InstanceCommand
from pitstop.supervisor.supervisor import Supervisor
from pitstop.taskfile.service import parse_service

FD_APP = Path(__file__).with_name("fd_app.py")


async def main(root: Path) -> None:
    (root / "version").write_text("v1")
    spec = parse_service(
        {"listen": "127.0.0.1:0", "ready": {"notify": True}}, Location(root / "pitstop.toml")
    )
    command = InstanceCommand((sys.executable, str(FD_APP), str(root / "version")), root)
    sup = Supervisor(spec, command, None, lambda _event: None)
    await sup.start()
    print(f"SERVING {sup.serving_pid} {sup.addresses[0].port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
