"""The Sluice broker process the Python client tests run against.

`Broker` starts `sluice serve` ($SLUICE_BIN, else target/debug/sluice) on a free port of
127.0.0.1 with a data directory under `root` and `--group-initial-rebalance-delay-ms 0`, and
stops it with SIGTERM.
"""

import os
import re
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SLUICE_BIN = os.environ.get("SLUICE_BIN") or str(REPO_ROOT / "target" / "debug" / "sluice")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def can_connect(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def tail(path, lines=200):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"(no broker log: {e})"


class Broker:
    """`extra_args(port)`, when given, returns more `serve` flags for the port clients
    bootstrap from (e.g. to name it in `--listeners`)."""

    def __init__(self, root, extra_args=None):
        self.root = Path(root)
        self.extra_args = extra_args or (lambda port: [])
        self.log_path = self.root / "broker.log"
        self.proc = None
        self.port = None

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def start(self, timeout=30):
        if not os.path.exists(SLUICE_BIN):
            raise RuntimeError(
                f"sluice binary not found at {SLUICE_BIN}; build it with `cargo build -p sluice` or set SLUICE_BIN"
            )
        last = None
        for _ in range(3):  # the free port may be taken before the broker binds it
            self.port = free_port()
            args = [
                SLUICE_BIN, "serve",
                "--listen", self.address,
                "--data-dir", str(self.root / "data"),
                "--group-initial-rebalance-delay-ms", "0",
                "--http-listen", "off",
                *self.extra_args(self.port),
            ]
            with open(self.log_path, "a") as log:
                log_start = log.tell()
                log.write(f"\n=== {' '.join(args)}\n")
                log.flush()
                self.proc = subprocess.Popen(
                    args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env={"RUST_BACKTRACE": "1", **os.environ},
                )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if self.started_since(log_start) and can_connect(self.port):
                    return
                time.sleep(0.05)
            if self.proc.poll() is None:
                self.stop()
                raise RuntimeError(f"sluice did not accept connections on {self.address}:\n{tail(self.log_path, 40)}")
            last = RuntimeError(f"sluice exited during startup ({self.proc.returncode}):\n{tail(self.log_path, 40)}")
            if "in use" not in tail(self.log_path, 20).lower():
                break
        raise last

    def started_since(self, offset):
        """Whether the log logged `Sluice <version> started` after `offset`: the broker's
        logs are open (it binds its port before that)."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                text = log.read().decode(errors="replace")
        except OSError:
            return False
        return re.search(r"Sluice \S+ started", text) is not None

    def stop(self, timeout=10):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def unique(prefix):
    return f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
