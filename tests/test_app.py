"""The web app: its parts on their own, then the real server driven by gradio_client and by a
real browser (Chromium through Playwright).

The server runs ``python app.py`` in a subprocess on a free port with a freshly initialised
MAN-optical checkpoint (set ``TALKING_APP_CHECKPOINT`` to serve a trained one instead). The
browser test saves its screenshot in its tmp_path; with ``TALKING_UPDATE_DOCS=1`` it also writes
``docs/app.png``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import soundfile
from appserver import REPO, fresh_checkpoint, import_app, running_app
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from talking.video import probe

app = import_app()
FACE, OTHER_FACE, SPEECH = (app.EXAMPLES / name for name in ("face-1.jpg", "face-2.jpg", "speech.wav"))
SPEECH_SECONDS = soundfile.info(SPEECH).duration
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIDEO_READY = """() => { const v = document.querySelector('#video video');
                         return v !== null && v.readyState >= 2 && v.duration > 0; }"""


def write_index(folder: Path, predictor: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps(
        {"_class_name": "TalkingFacePipeline", "motion_predictor": ["talking.models", predictor]}))
    return folder


def noise_photo(path: Path) -> Path:
    """A photo of noise: no face in it."""
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)).save(path)
    return path


# ---------------------------------------------------------------------------------------------
# The parts, without a server
# ---------------------------------------------------------------------------------------------


def test_checkpoint_folder_of_one_variant_is_recognised_by_its_predictor(tmp_path):
    optical = write_index(tmp_path / "a", "FlowMotion")
    keypoint = write_index(tmp_path / "b", "KeypointMotion")
    assert app.find_checkpoints(optical) == {"optical": optical}
    assert app.find_checkpoints(keypoint) == {"keypoint": keypoint}


def test_folder_of_checkpoints_offers_the_variants_it_holds(tmp_path):
    write_index(tmp_path / "man-keypoint", "KeypointMotion")
    assert app.find_checkpoints(tmp_path) == {"keypoint": tmp_path / "man-keypoint"}
    assert app.find_checkpoints(tmp_path / "nothing-here") == {}


def test_page_names_missing_and_broken_variants():
    notice = app.checkpoint_notice({"optical": Path("x")}, {}, Path("ckpt"))
    assert "MAN-keypoint is not installed" in notice and "`ckpt`" in notice
    assert "MAN-optical" not in notice
    notice = app.checkpoint_notice({}, {"optical": "The checkpoint in x is damaged."}, Path("ckpt"))
    assert "MAN-optical could not be loaded**: The checkpoint in x is damaged." in notice
    assert "Nothing can be generated" in notice
    assert app.checkpoint_notice({"optical": Path("x"), "keypoint": Path("y")}, {}, Path("c")) == ""


def test_each_request_gets_a_fresh_folder_and_old_ones_are_swept(tmp_path):
    folders = app.OutputFolders(tmp_path, max_age=60)
    first, second = folders.new(), folders.new()
    assert first != second and first.parent == second.parent == tmp_path
    (first / "talking.mp4").write_bytes(b"x")
    an_hour_ago = time.time() - 3600
    os.utime(first, (an_hour_ago, an_hour_ago))
    third = folders.new()
    assert not first.exists() and second.exists() and third.exists()


def test_missing_inputs_and_missing_model_are_explained_before_any_work(tmp_path):
    generate = app.RequestHandler({"optical": tmp_path}, app.OutputFolders(tmp_path))
    with pytest.raises(gr.Error, match="Add a face photo"):
        generate(None, str(SPEECH), "", "en-us", "optical", None, False)
    with pytest.raises(gr.Error, match="Add speech"):
        generate(str(FACE), None, "   ", "en-us", "optical", None, False)
    with pytest.raises(gr.Error, match="MAN-keypoint is not installed"):
        generate(str(FACE), str(SPEECH), "", "en-us", "keypoint", None, False)


def test_serves_locally_by_default_and_on_all_interfaces_on_a_space(monkeypatch):
    monkeypatch.delenv("SPACE_ID", raising=False)
    args = app.parse_args([])
    assert (args.host, args.port, args.share) == ("127.0.0.1", 7860, False)
    monkeypatch.setenv("SPACE_ID", "someone/talking")
    assert app.parse_args(["--share"]).host == "0.0.0.0"


# ---------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """The server's working directory: not the repository, which the app must not depend on."""
    return tmp_path_factory.mktemp("server")


@pytest.fixture(scope="module")
def checkpoint(workdir) -> str:
    """``--checkpoint`` for the server: ``checkpoints`` in its working directory holding a
    freshly initialised man-optical/ only, or TALKING_APP_CHECKPOINT."""
    if os.environ.get("TALKING_APP_CHECKPOINT"):
        return str(Path(os.environ["TALKING_APP_CHECKPOINT"]).resolve())
    fresh_checkpoint(workdir / "checkpoints" / "man-optical")
    return "checkpoints"


@pytest.fixture(scope="module")
def server(workdir, checkpoint):
    """``python app.py --checkpoint CHECKPOINT`` running, its temp files under ``workdir``."""
    with running_app(workdir, checkpoint) as app_server:
        yield app_server


@pytest.fixture(scope="module")
def client(server, tmp_path_factory) -> Client:
    return Client(server.url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))


def test_start_up_is_logged_in_one_line_from_the_process_start(server):
    line = r"ready in ([\d.]+) s \(imports ([\d.]+) s, models, page and server ([\d.]+) s\)"
    deadline = time.monotonic() + 30  # logged once the server answers its own start-up check
    while not (ready := re.search(line, server.log.read_text())) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ready, server.log.read_text()
    total, imports, rest = map(float, ready.groups())
    assert 0 < imports < total and total == pytest.approx(imports + rest, abs=0.11)


def test_api_returns_an_mp4_with_the_speech(client):
    video, crop = client.predict(handle_file(FACE), handle_file(SPEECH), "", "en-us+f3", "optical",
                                 None, False, api_name="/generate")
    info = probe(video)
    assert Path(video).name == "talking.mp4"  # our name, whatever the upload was called
    assert info.has_video and info.has_audio
    assert (info.codec, info.pix_fmt, info.audio_codec) == ("h264", "yuv420p", "aac")
    assert info.duration == pytest.approx(SPEECH_SECONDS, abs=0.1)
    assert np.asarray(Image.open(crop)).shape == (128, 128, 3)


def test_api_speaks_text_and_returns_the_crop_only_video(client):
    video, _ = client.predict(handle_file(OTHER_FACE), None, "Good morning.", "en-us+m3", "optical",
                              7, True, api_name="/generate")
    info = probe(video)
    assert info.has_audio and (info.width, info.height) == (128, 128)
    assert 0.5 < info.duration < 3


def test_api_takes_the_words_of_the_clip_and_makes_the_video_when_they_do_not_fit(client, server):
    video, _ = client.predict(handle_file(FACE), handle_file(SPEECH), "", "en-us", "optical", None, True,
                              "Seventeen purple elephants", api_name="/generate")
    assert probe(video).has_audio
    assert "warned: The words 'Seventeen purple elephants' cannot be fitted" in server.log.read_text()


def test_api_makes_the_motion_from_the_voice_alone_when_asked(client, server):
    plain, _ = client.predict(handle_file(FACE), handle_file(SPEECH), "", "en-us", "optical", None,
                              True, api_name="/generate")
    assert "the motion from the voice alone" not in server.log.read_text()  # not by default
    clean, _ = client.predict(handle_file(FACE), handle_file(SPEECH), "", "en-us", "optical", None,
                              True, "", True, api_name="/generate")
    assert probe(clean).has_audio
    assert probe(clean).duration == pytest.approx(probe(plain).duration, abs=0.05)
    made = [line for line in server.log.read_text().splitlines() if "made " in line]
    assert "frames for" in made[-1] and made[-1].endswith("the motion from the voice alone")


def test_api_refuses_bad_input_with_a_message_and_keeps_serving(client, tmp_path):
    with pytest.raises(AppError, match="No face found"):
        client.predict(handle_file(noise_photo(tmp_path / "noise.png")), handle_file(SPEECH), "",
                       "en-us", "optical", None, False, api_name="/generate")
    long_speech = tmp_path / "long.wav"
    soundfile.write(long_speech, np.zeros(61 * 8000, np.int16), 8000)
    with pytest.raises(AppError, match="61 s long; the limit is 60 s"):
        client.predict(handle_file(FACE), handle_file(long_speech), "", "en-us", "optical", None,
                       False, api_name="/generate")
    not_audio = tmp_path / "speech.wav"
    not_audio.write_text("this is not audio")
    with pytest.raises(AppError, match="speech.wav"):
        client.predict(handle_file(FACE), handle_file(not_audio), "", "en-us", "optical", None,
                       False, api_name="/generate")
    with pytest.raises(AppError, match="MAN-keypoint is not installed"):
        client.predict(handle_file(FACE), handle_file(SPEECH), "", "en-us", "keypoint", None,
                       False, api_name="/generate")


def test_api_refuses_a_file_that_is_not_a_photo_in_the_apps_words(client, tmp_path):
    """Gradio's image component once failed on it first, with its generic "Error"."""
    not_a_photo = tmp_path / "face.png"
    not_a_photo.write_text("this is not a photo")
    with pytest.raises(AppError, match="face.png: cannot read this file as an image"):
        client.predict(handle_file(not_a_photo), handle_file(SPEECH), "", "en-us", "optical", None,
                       False, api_name="/generate")


def test_refused_requests_are_one_log_line_without_a_traceback(client, server):
    with pytest.raises(AppError, match="Add a face photo"):
        client.predict(None, handle_file(SPEECH), "", "en-us", "optical", None, False,
                       api_name="/generate")
    with pytest.raises(AppError, match="Add speech"):
        client.predict(handle_file(FACE), None, "  ", "en-us", "optical", None, False,
                       api_name="/generate")
    log = server.log.read_text()
    assert "refused: Add a face photo" in log and "refused: Add speech" in log
    assert "Traceback" not in log


# ---------------------------------------------------------------------------------------------
# A real browser
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def page(server, request):
    """The app in Chromium, 1280 px wide unless the test is parametrised with another width."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("needs Chromium at /usr/bin/chromium")
    width = getattr(request, "param", 1280)
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                             args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": width, "height": 900 if width > 600 else 844})
        page.set_default_timeout(60_000)
        page.goto(server.url)
        page.wait_for_selector("#generate")
        yield page
        browser.close()


def upload(page, component: str, path: Path) -> None:
    """Put ``path`` into the face or speech component and wait until it shows it."""
    page.locator(f"#{component} input[type=file]").set_input_files(str(path))
    page.wait_for_selector("#face img" if component == "face" else '#speech button[aria-label="Clear"]')


def wait_for_video(page) -> dict:
    """Wait until the result video can play; its source, size and duration."""
    page.wait_for_function(VIDEO_READY, timeout=120_000)
    return page.evaluate("""() => { const v = document.querySelector('#video video');
        return {src: v.currentSrc, duration: v.duration, width: v.videoWidth}; }""")


@pytest.mark.slow
def test_browser_uploads_a_face_and_speech_and_plays_the_video(page, tmp_path):
    if not os.environ.get("TALKING_APP_CHECKPOINT"):
        assert "MAN-keypoint is not installed" in page.inner_text("#checkpoint-notice")
    upload(page, "face", FACE)
    upload(page, "speech", SPEECH)
    page.click("#generate")
    page.get_by_text("Generating frames").first.wait_for()  # the progress bar, fed per frame
    video = wait_for_video(page)
    assert video["src"].endswith("/talking.mp4")
    assert video["duration"] == pytest.approx(SPEECH_SECONDS, abs=0.1)
    page.wait_for_selector("#crop img")
    # show a frame from the middle of the clip, not the player's first one
    page.evaluate("() => { const v = document.querySelector('#video video'); v.pause(); "
                  "v.currentTime = v.duration / 2; }")
    page.wait_for_function("() => !document.querySelector('#video video').seeking")
    page.screenshot(path=tmp_path / "app.png", full_page=True)
    if os.environ.get("TALKING_UPDATE_DOCS") == "1":
        shutil.copyfile(tmp_path / "app.png", REPO / "docs" / "app.png")


@pytest.mark.slow
def test_browser_shows_why_a_photo_without_a_face_fails_then_runs_an_example(page, tmp_path):
    upload(page, "face", noise_photo(tmp_path / "noise.png"))
    upload(page, "speech", SPEECH)
    page.click("#generate")
    page.get_by_text("No face found").first.wait_for()
    assert page.locator("#video video").count() == 0
    page.get_by_text("Good morning!").click()  # an example: fills the inputs and generates
    assert wait_for_video(page)["duration"] > 1
    assert page.input_value("#text textarea").startswith("Good morning!")
    assert page.locator('#speech button[aria-label="Clear"]').count() == 0  # spoken from the text


VOICE_TEXT = """() => { const input = document.querySelector('#voice input');
    const box = input.getBoundingClientRect(), style = getComputedStyle(input);
    const context = document.createElement('canvas').getContext('2d');
    context.font = style.font;
    const icons = [...document.querySelectorAll('#voice svg')].map(svg => svg.getBoundingClientRect())
        .filter(icon => icon.width > 0 && icon.top < box.bottom && icon.bottom > box.top);
    const textRight = box.left + parseFloat(style.paddingLeft) + context.measureText(input.value).width;
    return {text: input.value, icons: icons.map(icon => icon.left), textRight: textRight}; }"""

OVERFLOW = """() => { const width = document.documentElement.clientWidth;
    const examples = [...document.querySelectorAll('#examples *')].map(e => e.getBoundingClientRect())
        .filter(box => box.width > 0);
    return {page: document.documentElement.scrollWidth, width: width, examples: examples.length,
            beyond: examples.filter(box => box.right > width + 1).length}; }"""


@pytest.mark.slow
@pytest.mark.parametrize("page", [390, 1280], indirect=True, ids=["phone-390px", "desktop"])
def test_voice_and_examples_fit_the_screen(page, tmp_path):
    """At 390 px the Voice dropdown's text was cut under its arrow ("English (US), fema") and the
    Examples table's last column ran off the edge."""
    voice = page.evaluate(VOICE_TEXT)
    assert voice["text"] == "English (US), female" and voice["icons"], voice
    assert all(voice["textRight"] <= left for left in voice["icons"]), voice  # not under the arrow
    layout = page.evaluate(OVERFLOW)
    assert layout["examples"] > 0 and layout["beyond"] == 0, layout
    assert layout["page"] <= layout["width"], layout  # no sideways scrolling
    page.screenshot(path=tmp_path / "app.png", full_page=True)
