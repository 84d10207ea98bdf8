"""Run multi-worker training on this machine: ``python -m mmali_tf.launch --workers=2 -- <mmali_tf.train args>``.

Starts ``--workers`` processes of ``python -m mmali_tf.train <args> --strategy=multi_worker``, each with a
``TF_CONFIG`` that lists the same free 127.0.0.1 ports (worker 0 is the chief), prefixes their output with
``[worker i]``, forwards SIGTERM / SIGINT to all of them (so they save a checkpoint at the same step and stop), and
exits with the first non-zero exit status of a worker (0 if all succeeded). Rerunning the same command resumes.
For several machines, set TF_CONFIG on each yourself (BUILD.md, "Multi-worker training").
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys

from absl import flags

from mmali_tf import cli
from mmali_tf.errors import ConfigError

flags.DEFINE_integer("workers", 2, "Worker processes to start on this machine.", lower_bound=1)
flags.DEFINE_string("host", "127.0.0.1", "Address the workers listen on.")
F = flags.FLAGS


def free_ports(count: int, host: str) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(addresses: list[str], index: int) -> str:
    return json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})


def launch(train_args: list[str], workers: int, host: str = "127.0.0.1", stream=sys.stdout) -> int:
    """Run the workers to completion; returns the launcher's exit status."""
    if any(a.startswith(("--strategy", "--config.train.strategy")) for a in train_args):
        raise ConfigError("do not pass --strategy to the launcher: it runs multi_worker")
    addresses = [f"{host}:{p}" for p in free_ports(workers, host)]
    processes = []
    for i in range(workers):
        env = {**os.environ, "TF_CONFIG": tf_config(addresses, i)}
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "mmali_tf.train", *train_args, "--strategy=multi_worker"], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1))
        stream.write(f"[launch] worker {i} (pid {processes[-1].pid}) at {addresses[i]}\n")
    stream.flush()

    def forward(signum, frame):
        for p in processes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        selector = selectors.DefaultSelector()
        for i, p in enumerate(processes):
            selector.register(p.stdout, selectors.EVENT_READ, i)
        open_streams = len(processes)
        while open_streams:
            for key, _ in selector.select():
                line = key.fileobj.readline()
                if not line:
                    selector.unregister(key.fileobj)
                    open_streams -= 1
                    continue
                stream.write(f"[worker {key.data}] {line}")
                stream.flush()
        codes = [p.wait() for p in processes]
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return next((c for c in codes if c != 0), 0)


def main(argv) -> None:
    if "--" in sys.argv:
        train_args = sys.argv[sys.argv.index("--") + 1:]
    else:
        train_args = []
    if not train_args:
        raise ConfigError("give the training arguments after --, e.g. python -m mmali_tf.launch --workers=2 -- "
                          "--config=tiny --workdir=runs/x")
    sys.exit(launch(train_args, F.workers, F.host))


def entry_point() -> None:
    # Everything after "--" belongs to mmali_tf.train; absl must not see it.
    own = sys.argv[: sys.argv.index("--")] if "--" in sys.argv else sys.argv
    cli.run_main(main, argv=own)


if __name__ == "__main__":
    entry_point()
