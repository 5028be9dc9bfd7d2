"""Fixtures for the studio tests: a runs folder holding one finished tiny run, a data
folder whose ``sst2`` is the tiny data, and the app launched on localhost in a subprocess
(``python app.py``, as users start it) with those folders."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UPLOAD_LIMIT_MB = 1  # small, so the "past the size limit" test uploads little


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def studio_data(tmp_path_factory, tiny_data_dir) -> Path:
    """A KDSTUDIO_DATA_DIR whose sst2/ is the tiny data, so "SST-2 (built in)" is quick."""
    d = tmp_path_factory.mktemp("studio-data")
    shutil.copytree(tiny_data_dir, d / "sst2")
    return d


@pytest.fixture(scope="session")
def studio_root(tmp_path_factory, finished_run) -> Path:
    """A runs folder holding a copy of the shared finished tiny run (5 MB). A copy, not hard
    links: the studio appends to a run's events and starts runs that reuse its teacher, and
    nothing it does may reach the shared run the other tests read."""
    root = tmp_path_factory.mktemp("studio-runs")
    shutil.copytree(finished_run.path, root / finished_run.id)
    return root


class Server:
    def __init__(self, root: Path, data: Path, log: Path, env: dict | None = None):
        self.root, self.data, self.log = root, data, log
        self.extra_env = env or {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90.0) -> Server:
        import urllib.request

        env = {**os.environ, "KDSTUDIO_RUNS_DIR": str(self.root),
               "KDSTUDIO_DATA_DIR": str(self.data), "GRADIO_SERVER_NAME": "127.0.0.1",
               "GRADIO_SERVER_PORT": str(self.port), "GRADIO_ANALYTICS_ENABLED": "False",
               "KDSTUDIO_MAX_UPLOAD_MB": str(UPLOAD_LIMIT_MB), "TOKENIZERS_PARALLELISM": "false"}
        env.pop("KDSTUDIO_CACHE_DIR", None)
        env.pop("KDSTUDIO_ADMIN_KEY", None)
        env.update(self.extra_env)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env,
                                         stdout=log, stderr=subprocess.STDOUT)
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the app exited: {self.log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(self.url, timeout=10)  # a busy CPU renders slowly
                return self
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"the app did not start: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> Server:
        """Stop the server and start a fresh one on the same folders (and a new port)."""
        self.stop()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        return self.start()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@pytest.fixture(scope="session")
def studio(studio_root, studio_data, tmp_path_factory):
    """The app running on localhost; no job is left running after the tests."""
    from kdstudio import jobs

    server = Server(studio_root, studio_data,
                    tmp_path_factory.mktemp("studio-log") / "server.log").start()
    yield server
    server.stop()
    busy = jobs.active_job(studio_root)
    if busy is not None:
        jobs.cancel(busy, grace=5, wait=True)


@pytest.fixture
def client(studio):
    from gradio_client import Client

    return Client(studio.url, verbose=False, download_files=False)


ADMIN_KEY = "stage-key-42"


@pytest.fixture(scope="session")
def locked_studio(tmp_path_factory, finished_run, studio_data):
    """A second app in presenter mode (KDSTUDIO_ADMIN_KEY set) on a runs folder of its own."""
    from kdstudio import jobs

    root = tmp_path_factory.mktemp("locked-runs")
    shutil.copytree(finished_run.path, root / finished_run.id)
    server = Server(root, studio_data, tmp_path_factory.mktemp("locked-log") / "server.log",
                    env={"KDSTUDIO_ADMIN_KEY": ADMIN_KEY}).start()
    yield server
    server.stop()
    busy = jobs.active_job(root)
    if busy is not None:
        jobs.cancel(busy, grace=5, wait=True)
