"""Watch latency: time from a file write to the batch that reports it, and burst coalescing.

    .venv/bin/python benchmarks/watch_latency.py [--samples 30] [--debounce 50] [--poll]

Prints the median / p90 / max latency of single writes and, for a burst of files written at
once (a ``git checkout``), how many batches it produced and when the (first) batch arrived.
Latency is dominated by the debounce window: a batch ends after ``debounce`` ms of quiet.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from pitstop.watch import PathFilter, watch_changes


async def _consume(stream: object, queue: asyncio.Queue[tuple[float, frozenset[Path]]]) -> None:
    async for batch in stream:  # type: ignore[attr-defined]
        queue.put_nowait((time.perf_counter(), batch))


async def _ready(root: Path, queue: asyncio.Queue[tuple[float, frozenset[Path]]]) -> None:
    # watchfiles has no "ready" signal: write probes until one is seen.
    for attempt in range(1000):
        probe = root / f"probe-{attempt}"
        probe.write_text("x")
        try:
            _, batch = await asyncio.wait_for(queue.get(), 0.3)
        except TimeoutError:
            continue
        if probe in batch:
            return
    raise RuntimeError("watcher never became ready")


async def _measure(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        queue: asyncio.Queue[tuple[float, frozenset[Path]]] = asyncio.Queue()
        stream = watch_changes(
            [root], watch_filter=PathFilter([root]), debounce_ms=args.debounce, poll=args.poll
        )
        consumer = asyncio.create_task(_consume(stream, queue))
        await _ready(root, queue)
        latencies = []
        for i in range(args.samples):
            target = root / f"sample-{i}.py"
            start = time.perf_counter()
            target.write_text("print()")
            arrived, batch = await queue.get()
            assert target in batch
            latencies.append((arrived - start) * 1000)
        latencies.sort()
        p90 = latencies[int(len(latencies) * 0.9) - 1]
        mode = "polling" if args.poll else "native"
        print(f"single write ({mode}, debounce {args.debounce} ms, {args.samples} samples):")
        print(
            f"  median {statistics.median(latencies):.1f} ms  p90 {p90:.1f} ms"
            f"  max {latencies[-1]:.1f} ms"
        )

        burst = [root / f"burst-{i}.rs" for i in range(args.burst)]
        start = time.perf_counter()
        for path in burst:
            path.write_text("fn main() {}")
        arrived, batch = await queue.get()
        batches, seen = 1, set(batch)
        while not seen >= set(burst):
            _, more = await queue.get()
            batches += 1
            seen |= more
        print(
            f"burst of {args.burst} files: {batches} batch(es), first after "
            f"{(arrived - start) * 1000:.1f} ms"
        )
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--debounce", type=int, default=50)
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--poll", action="store_true")
    asyncio.run(_measure(parser.parse_args()))


if __name__ == "__main__":
    main()
