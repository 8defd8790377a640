"""The app under load: the real server (``python app.py`` on 127.0.0.1, freshly initialised
weights) is sent 8 generations at once by 8 gradio_client users, with refused requests among them.
Every good request gets a valid video, every bad one its error, the server stays up, its memory
stays bounded and its temp files are cleaned up. Hostile upload names write nothing outside
Gradio's upload cache.

Marked slow (minutes on 2 cores). It prints the throughput and the latencies that
``docs/LOAD.md`` records.
"""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile
from appserver import REPO, AppServer, fresh_checkpoint, running_app
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from talking.config import SAMPLE_RATE
from talking.speech import synthesize
from talking.video import probe

pytestmark = pytest.mark.slow

FACES = [REPO / "examples" / "face-1.jpg", REPO / "examples" / "face-2.jpg"]
SENTENCES = ["Good morning, how are you?", "The weather is lovely today.",
             "Please pass me the salt.", "We will meet again at noon.",
             "This is a short test.", "Blue boats float by the pier.",
             "My cat likes warm milk.", "Thank you for listening."]
USERS = len(SENTENCES)
# Growth of the server's resident memory allowed above its level after the first generation.
MEMORY_HEADROOM_MB = 300


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("server")


@pytest.fixture(scope="module")
def server(workdir) -> AppServer:
    fresh_checkpoint(workdir / "checkpoints" / "man-optical")
    with running_app(workdir, "checkpoints") as app_server:
        yield app_server


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, list[Path] | Path]:
    """Speech of 2 to 3 s per user, and the bad requests' files."""
    folder = tmp_path_factory.mktemp("inputs")
    speech = []
    for user, sentence in enumerate(SENTENCES):
        audio = synthesize(sentence).audio
        audio = np.resize(audio, int((2.0 + user / USERS) * SAMPLE_RATE))  # 2.0 .. 2.9 s
        speech.append(folder / f"user-{user}.wav")
        soundfile.write(speech[-1], audio, SAMPLE_RATE)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)).save(folder / "noise.png")
    (folder / "notes.wav").write_text("this is a shopping list, not speech")
    soundfile.write(folder / "long.wav", np.zeros(61 * 8000, np.int16), 8000)
    return {"speech": speech, "noise": folder / "noise.png", "notes": folder / "notes.wav",
            "long": folder / "long.wav"}


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


class MemoryWatch:
    """The peak resident memory of process ``pid``, sampled every 0.1 s while in the block."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()

    def __enter__(self) -> MemoryWatch:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, rss_mb(self.pid))


def generate(client: Client, face: Path, speech: Path):
    return client.submit(handle_file(face), handle_file(speech), "", "en-us+f3", "optical", None,
                         False, api_name="/generate")


def test_eight_users_at_once_get_their_videos_and_bad_requests_their_errors(server, inputs,
                                                                             workdir, tmp_path):
    download = tmp_path / "downloads"
    clients = [Client(server.url, verbose=False, download_files=str(download / str(i)))
               for i in range(USERS + 3)]
    # 1. warm up: one generation, after which the server holds everything a request needs
    generate(clients[0], FACES[0], inputs["speech"][0]).result()
    warm_rss = rss_mb(server.process.pid)

    # 2. eight users and three bad requests, all sent at once, the bad ones in between
    requests = [("good", FACES[user % 2], inputs["speech"][user]) for user in range(USERS)]
    requests[2:2] = [("no face", inputs["noise"], inputs["speech"][0])]
    requests[5:5] = [("not audio", FACES[0], inputs["notes"])]
    requests[8:8] = [("too long", FACES[1], inputs["long"])]
    latencies, results = [None] * len(requests), [None] * len(requests)

    def wait(index: int, job, sent: float) -> None:
        try:
            results[index] = job.result()
        except AppError as error:
            results[index] = error
        latencies[index] = time.perf_counter() - sent

    with MemoryWatch(server.process.pid) as memory, concurrent.futures.ThreadPoolExecutor(
            len(requests)) as pool:
        started, waits = time.perf_counter(), []
        for i, (_, face, speech) in enumerate(requests):
            sent = time.perf_counter()
            waits.append(pool.submit(wait, i, generate(clients[i], face, speech), sent))
        concurrent.futures.wait(waits)
        wall = time.perf_counter() - started
    for future in waits:
        future.result()

    # 3. good requests: valid videos of their speech; bad ones: their errors
    good = [i for i, (kind, _, _) in enumerate(requests) if kind == "good"]
    for i in good:
        assert not isinstance(results[i], AppError), results[i]
        info = probe(results[i][0])
        assert (info.codec, info.pix_fmt, info.audio_codec) == ("h264", "yuv420p", "aac")
        assert info.duration == pytest.approx(soundfile.info(requests[i][2]).duration, abs=0.1)
    expected = {"no face": "No face found", "not audio": "notes.wav: cannot read audio",
                "too long": "61 s long; the limit is 60 s"}
    for i, (kind, _, _) in enumerate(requests):
        if kind != "good":
            assert isinstance(results[i], AppError) and expected[kind] in str(results[i])

    # 4. the server is up, its memory bounded, its temp files cleaned up
    assert server.process.poll() is None
    assert "Traceback" not in server.log.read_text()
    assert memory.peak < warm_rss + MEMORY_HEADROOM_MB, (memory.peak, warm_rss)
    outputs = sorted((workdir / "talking-app").iterdir())
    assert len(outputs) == 1 + len(good)  # the warm-up's and the good requests'; none for errors
    assert all([p.name for p in folder.iterdir()] == ["talking.mp4"] for folder in outputs)
    assert not list(workdir.rglob("*.partial.mp4")) and not list(workdir.glob("talking-*.wav"))

    latency = np.array([latencies[i] for i in good])
    audio_seconds = sum(soundfile.info(requests[i][2]).duration for i in good)
    report = {"users": USERS, "bad_requests": len(requests) - len(good), "wall_s": wall,
              "videos_per_minute": len(good) / wall * 60, "audio_s_per_wall_s": audio_seconds / wall,
              "p50_s": float(np.percentile(latency, 50)), "p95_s": float(np.percentile(latency, 95)),
              "max_s": float(latency.max()), "warm_rss_mb": warm_rss, "peak_rss_mb": memory.peak,
              "final_rss_mb": rss_mb(server.process.pid),
              "gradio_cache_files": sum(path.is_file() for path in (workdir / "gradio").rglob("*"))}
    print("\nload:", json.dumps(report, indent=1))


def upload(url: str, name: str, content: bytes) -> str:
    """POST ``content`` to Gradio's upload route under the file name ``name``, as a browser
    would; the server path Gradio stored it at."""
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode() + content + (
            f"\r\n--{boundary}--\r\n").encode()
    request = urllib.request.Request(f"{url}gradio_api/upload", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())[0]


# (name as uploaded, whether the app makes the video): Gradio keeps only the last part of a name,
# with separators dropped, and refuses to use a name that then starts with a dot.
HOSTILE_NAMES = [("../../evil.mp4", True), ("/tmp/evil-absolute.mp4", True),
                 ("..\\..\\evil-windows.mp4", False), ("ünïcödé 🙂 évil.mp4", True),
                 ("talking.mp4", True)]


@pytest.mark.parametrize(("name", "served"), HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
def test_upload_names_never_choose_where_the_server_writes(server, inputs, workdir, tmp_path, name,
                                                           served):
    outside = [workdir.parent / "evil.mp4", Path("/tmp/evil-absolute.mp4"), workdir / "evil.mp4"]
    assert not any(path.exists() for path in outside)
    face = upload(server.url, name, FACES[0].read_bytes())
    speech = upload(server.url, name.replace(".mp4", ".wav"), inputs["speech"][1].read_bytes())
    gradio_cache = (workdir / "gradio").resolve()
    assert Path(face).resolve().is_relative_to(gradio_cache)
    assert Path(speech).resolve().is_relative_to(gradio_cache)

    client = Client(server.url, verbose=False, download_files=str(tmp_path))
    arguments = ({"path": face, "meta": {"_type": "gradio.FileData"}},
                 {"path": speech, "meta": {"_type": "gradio.FileData"}}, "", "en-us+f3", "optical",
                 None, True)
    if served:
        video, _ = client.predict(*arguments, api_name="/generate")
        assert Path(video).name == "talking.mp4" and probe(video).has_video
    else:
        with pytest.raises(AppError):
            client.predict(*arguments, api_name="/generate")
    assert not any(path.exists() for path in outside)
    strays = [path for path in workdir.rglob("*evil*")
              if not path.resolve().is_relative_to(gradio_cache)]
    assert strays == []
    assert server.process.poll() is None
