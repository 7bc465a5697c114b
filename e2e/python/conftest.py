"""Pytest fixtures: a real strait-broker process on a free loopback port with a temporary
data directory, started once per test session and stopped with SIGTERM."""

import os
import pathlib
import socket
import subprocess
import tempfile
import time

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 30


def broker_binary() -> pathlib.Path:
    env = os.environ.get("STRAIT_BROKER_BIN")
    path = pathlib.Path(env) if env else REPO_ROOT / "target" / "release" / "strait-broker"
    if not path.is_file():
        pytest.fail(f"broker binary not found at {path}: run cargo build --release first")
    return path


_HANDED_OUT = set()


def free_port() -> int:
    """A loopback port free now and never handed out before in this session: the kernel may
    offer a just-released port again, and two listeners of one test must not get the same one."""
    held = []
    try:
        for _ in range(64):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            if port not in _HANDED_OUT:
                s.close()
                _HANDED_OUT.add(port)
                return port
            held.append(s)
    finally:
        for s in held:
            s.close()
    raise RuntimeError("no loopback port that this session has not used already")


class BrokerProcess:
    """`extra_listeners` (e.g. `,SSL://127.0.0.1:PORT`) are appended to the PLAINTEXT listener the
    harness waits on; `overrides` are further `key=value` pairs; `extra_args` other command-line
    arguments (`--add-scram ...`)."""

    def __init__(self, workdir: pathlib.Path, extra_listeners: str = "", overrides=(),
                 extra_args=()):
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.stderr_path = workdir / "broker.stderr"
        self._stderr = open(self.stderr_path, "wb")
        args = [
            str(broker_binary()),
            "--override", f"listeners=PLAINTEXT://127.0.0.1:{self.port}{extra_listeners}",
            "--override", f"log.dirs={workdir / 'data'}",
            "--override", "metrics.listener=",
            "--override", "num.partitions=1",
        ]
        for pair in overrides:
            args += ["--override", pair]
        args += list(extra_args)
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            cwd=workdir,
            env={**os.environ, "NO_COLOR": "1", "RUST_LOG": "info"},
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"broker exited {self.proc.returncode}:\n{self.stderr()}")
            if "broker ready" in self.stderr() and self._accepts():
                return
            time.sleep(0.05)
        self.proc.kill()
        pytest.fail(f"broker not ready in {READY_TIMEOUT_S}s:\n{self.stderr()}")

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._stderr.close()
        return self.proc.returncode


@pytest.fixture(scope="session")
def broker():
    with tempfile.TemporaryDirectory(prefix="strait-pytest-") as workdir:
        process = BrokerProcess(pathlib.Path(workdir))
        try:
            yield process
        finally:
            code = process.stop()
            assert code == 0, f"broker exit status {code} after SIGTERM:\n{process.stderr()[-4000:]}"
