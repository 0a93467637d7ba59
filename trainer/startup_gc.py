"""Python's cyclic garbage collector around start-up and exit.

Start-up creates about a million long-lived objects (torch, mlflow, torch._dynamo, Hydra's
configs), and every full collection walks all of them again while the imports go on: 1.3 s of a
sweep's start-up on 2 cores, and ~0.8 s more in the collections of interpreter exit
(scripts/bench_overhead.py measures both). Training allocates few container objects, so the
collector costs nothing once the loop runs.

So `launch.py` turns it off first. When start-up is over (`settle`: the sweeper about to
compose its jobs, or a single run about to train), one collection frees start-up's own
cycles, every survivor moves to the permanent generation, which later collections skip
(`gc.freeze`), and the collector is back on. `before_exit` does the same for exit: the
process ends without walking its heap; atexit handlers and refcounting still close files,
stores and threads.
"""

from __future__ import annotations

import gc


def pause() -> None:
    gc.disable()


def settle() -> None:
    """Once, in a process that paused: later calls (the next job of a local sweep) would
    freeze that job's model and optimizer too, whose cycles would then outlive it."""
    if gc.isenabled():
        return
    gc.collect()
    gc.freeze()
    gc.enable()


def before_exit() -> None:
    gc.freeze()
