"""The web app for tests: ``app.py`` imported as a module, or run as a real server (``python
app.py`` in a subprocess on a free port of 127.0.0.1, its temp files under a folder of the test's
choosing), with a freshly initialised checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from talking.models import build_models
from talking.pipeline import TalkingFacePipeline

REPO = Path(__file__).resolve().parents[1]


def import_app():
    """``app.py``, a script at the repository root (the Space's entry point), as module ``app``."""
    if "app" not in sys.modules:
        spec = importlib.util.spec_from_file_location("app", REPO / "app.py")
        sys.modules["app"] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules["app"]


def fresh_checkpoint(folder: Path) -> Path:
    """A freshly initialised MAN-optical pipeline saved in ``folder`` (the plumbing does not
    depend on the weights)."""
    torch.manual_seed(0)
    generator, predictor, _ = build_models("optical", 128)
    TalkingFacePipeline(generator=generator.eval(), motion_predictor=predictor.eval()).save_pretrained(
        folder)
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclasses.dataclass(frozen=True)
class AppServer:
    """A running ``app.py``: its URL, its process and its log."""

    url: str
    process: subprocess.Popen
    log: Path


@contextlib.contextmanager
def running_app(workdir: Path, checkpoint: str, timeout: float = 180) -> Iterator[AppServer]:
    """``python app.py --checkpoint CHECKPOINT`` run in ``workdir``, with TMPDIR and Gradio's
    cache under it; stopped (by its PID) on exit."""
    port = free_port()
    env = {**os.environ, "TMPDIR": str(workdir), "GRADIO_TEMP_DIR": str(workdir / "gradio"),
           "GRADIO_ANALYTICS_ENABLED": "False"}
    env.pop("SPACE_ID", None)
    log_path = workdir / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--checkpoint", checkpoint,
                                    "--port", str(port)], cwd=workdir, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/"
        try:
            _wait_until_it_answers(url, process, log_path, timeout)
            yield AppServer(url, process, log_path)
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_until_it_answers(url: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            pytest.fail(f"app.py exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"app.py did not answer in {timeout:.0f} s:\n{log.read_text()}")
        time.sleep(0.5)
