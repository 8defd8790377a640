"""talking's web app (and the Hugging Face Space's entry point): a face photo and speech in, a
talking video out.

    python app.py                      # http://127.0.0.1:7860
    python app.py --share              # also ask Gradio for a public link
    python app.py --checkpoint DIR --host 0.0.0.0 --port 8080

``--checkpoint`` is one variant's ``save_pretrained`` folder or a folder holding ``man-optical/``
and ``man-keypoint/`` (default: ``checkpoints/``). The app starts whatever is missing and says in
the page which variants it could not find. On a Space (``SPACE_ID`` set) it listens on 0.0.0.0.

How it holds up as a service:

- Models are loaded once, at start-up, and shared by every request.
- One generation runs at a time (the queue's ``default_concurrency_limit=1``: a 2-vCPU Space has
  no room for two), at most ``QUEUE_SIZE`` wait; uploads are limited to ``MAX_FILE_SIZE``, speech
  to ``--max-seconds`` (60 s), photos to :data:`talking.image.MAX_PIXELS`.
- Each request writes into a fresh folder ``<tmp>/talking-app/<random>/``, never into a path
  derived from an uploaded file's name. Gradio copies results into its cache, which
  ``delete_cache`` empties of files older than an hour, every hour; our own folders older than an
  hour are deleted whenever a new request starts, and a failed request's folder at once.
- The inputs reach the handler as Gradio received them (``preprocess=False``: the uploads are
  still checked to be Gradio's own files), so that a photo or speech file Gradio could not decode
  is judged by the project's readers and refused in their words.
- A :class:`TalkingError` (no face, unreadable or too long audio, huge image) or a missing input
  reaches the user as a ``gr.Error`` with its message and is logged in one line; any other
  exception is logged with its traceback and shown as a short generic ``gr.Error``. Nothing a
  request does stops the server. A :class:`TalkingWarning` (a transcript that does not fit the
  speech) is shown as a ``gr.Warning`` beside the video, which is made without what it warns of.
- Start-up is logged as one line, ``ready in N s (imports A s, models B s)``, from the moment the
  process started.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from talking.errors import TalkingError, TalkingWarning

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE / "examples"
VARIANTS = {"optical": "MAN-optical", "keypoint": "MAN-keypoint"}
MAX_FILE_SIZE = "25mb"
QUEUE_SIZE = 16
MAX_TEXT = 500  # characters of text to speak
OUTPUT_MAX_AGE = 3600.0  # seconds an output folder is kept
# (label, espeak-ng voice name) offered for text to speak.
VOICES = [
    ("English (US), female", "en-us+f3"), ("English (US), male", "en-us+m3"),
    ("English (UK), female", "en+f2"), ("English (UK), male", "en+m1"),
    ("German", "de+m2"), ("French", "fr+f3"), ("Spanish", "es+m3"),
    ("Italian", "it+f2"), ("Portuguese (Brazil)", "pt-br+m1"), ("Dutch", "nl+f1"),
]

logger = logging.getLogger("talking.app")


# ---------------------------------------------------------------------------------------------
# Checkpoints and output folders
# ---------------------------------------------------------------------------------------------


def find_checkpoints(path: str | os.PathLike) -> dict[str, Path]:
    """Variant ("optical" / "keypoint") -> its pipeline folder, for whatever ``path`` holds.

    ``path`` is one pipeline folder (its variant read from ``model_index.json``) or a folder with
    ``man-optical/`` and ``man-keypoint/`` subfolders; variants without a folder are left out.
    """
    path = Path(path)
    if (path / "model_index.json").is_file():
        index = json.loads((path / "model_index.json").read_text())
        predictor = index.get("motion_predictor", [None, None])[1]
        return {"optical" if predictor == "FlowMotion" else "keypoint": path}
    return {variant: path / f"man-{variant}" for variant in VARIANTS
            if (path / f"man-{variant}" / "model_index.json").is_file()}


class OutputFolders:
    """Fresh folders for each request's files under ``root``; old ones are swept away."""

    def __init__(self, root: str | os.PathLike, max_age: float = OUTPUT_MAX_AGE):
        self.root, self.max_age = Path(root), max_age

    def new(self) -> Path:
        """A new empty folder with a random name; deletes folders older than ``max_age`` first."""
        self.root.mkdir(parents=True, exist_ok=True)
        cutoff = time.time() - self.max_age
        for old in self.root.iterdir():
            try:
                if old.stat().st_mtime < cutoff:
                    shutil.rmtree(old, ignore_errors=True)
            except FileNotFoundError:  # another process swept it first
                pass
        folder = self.root / uuid.uuid4().hex
        folder.mkdir()
        return folder


# ---------------------------------------------------------------------------------------------
# The request handler
# ---------------------------------------------------------------------------------------------


@dataclass
class RequestHandler:
    """Turns one request's inputs into (video path, aligned face crop); raises only gr.Error."""

    checkpoints: dict[str, Path]
    outputs: OutputFolders
    device: str = "auto"
    max_seconds: float = 60.0

    def load(self) -> dict[str, str]:
        """Load every available variant now, and warm up what the first request would wait
        for (:func:`talking.generate.warm_up`), so that no request waits for it. A variant that
        fails to load is dropped; returns variant -> why, for the page to say."""
        from talking.generate import load_pipeline, resolve_device, warm_up

        failures = {}
        for variant, path in list(self.checkpoints.items()):
            start = time.perf_counter()
            try:
                load_pipeline(path.resolve(), resolve_device(self.device))
            except TalkingError as error:
                logger.error("%s: %s", VARIANTS[variant], error)
                failures[variant] = str(error)
                del self.checkpoints[variant]
                continue
            logger.info("loaded %s from %s in %.1f s", VARIANTS[variant], path,
                        time.perf_counter() - start)
        start = time.perf_counter()
        warm_up()
        logger.info("warmed up the face graphs, audio features and video writer in %.1f s",
                    time.perf_counter() - start)
        return failures

    def __call__(self, face: str | dict | None, speech: str | dict | None, text: str, voice: str,
                 variant: str, seed: float | None, crop_only: bool, transcript: str = "",
                 clean_speech: bool = False, progress: gr.Progress = gr.Progress()):
        """``face`` and ``speech`` are file paths, or Gradio's file payloads ({"path": ...})."""
        face, speech = upload_path(face), upload_path(speech)
        text, transcript = (text or "").strip(), (transcript or "").strip()
        try:
            if not face:
                raise TalkingError("Add a face photo: upload one, take one with the webcam or paste one.")
            if not speech and not text:
                raise TalkingError("Add speech: upload or record a clip, or type a text to speak.")
            if variant not in self.checkpoints:
                raise TalkingError(f"{VARIANTS.get(variant, variant)} is not installed on this server; "
                                   "choose another model.")
            seed = None if seed is None else int(seed)
            return self._generate(face, speech, text, voice, variant, seed, crop_only, transcript,
                                  bool(clean_speech), progress)
        except TalkingError as error:
            logger.info("refused: %s", error)
            raise gr.Error(str(error), print_exception=False) from error
        except Exception as error:
            logger.exception("generation failed")
            raise gr.Error("Something went wrong while making the video; it has been logged. "
                           "Try another photo or speech clip.", print_exception=False) from error

    def _generate(self, face, speech, text, voice, variant, seed, crop_only, transcript, clean_speech,
                  progress):
        from talking.generate import GenerateOptions, generate_video

        options = GenerateOptions(checkpoint=str(self.checkpoints[variant]), variant=variant,
                                  device=self.device, seed=seed, crop_only=crop_only,
                                  text=None if speech else text, voice=voice,
                                  transcript=(transcript or None) if speech else None,
                                  clean_speech=clean_speech, max_seconds=self.max_seconds)
        # The photo and the speech (and its length) are checked before any frame is made.
        progress(0, desc="Finding the face and reading the speech")

        def report(done: int, total: int) -> None:
            progress((done, total), desc="Generating frames", unit="frames")

        folder = self.outputs.new()
        try:
            with warnings.catch_warnings(record=True) as caught:  # one request at a time
                warnings.simplefilter("always", TalkingWarning)
                result = generate_video(face, speech or None, folder / "talking.mp4", options,
                                        progress=report)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)  # a refused request leaves nothing behind
            raise
        for warning in caught:
            if issubclass(warning.category, TalkingWarning):
                logger.info("warned: %s", warning.message)
                gr.Warning(str(warning.message))
            else:  # recorded only to be told apart: shown as Python would have
                warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
        logger.info("made %d frames for %.1f s of speech with %s%s", result.num_frames, result.duration,
                    VARIANTS[variant], ", the motion from the voice alone" if options.clean_speech else "")
        return str(result.path), result.face


def upload_path(value: str | dict | None) -> str | None:
    """The file path of an input: Gradio's file payload ({"path": ...}) when the event skips
    preprocessing, the path itself otherwise (cached examples)."""
    if isinstance(value, dict):
        value = value.get("path")
    return str(value) if value else None


# ---------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------


def checkpoint_notice(checkpoints: dict[str, Path], failures: dict[str, str], searched: Path) -> str:
    """Markdown naming the variants that are not available, and why (empty when all are)."""
    lines = [f"- **{VARIANTS[variant]} could not be loaded**: {why}" for variant, why in failures.items()]
    lines += [f"- **{name} is not installed**: no checkpoint for it in `{searched}`."
              for variant, name in VARIANTS.items() if variant not in checkpoints and variant not in failures]
    if not lines:
        return ""
    if not checkpoints:
        lines.append("\nNothing can be generated until a model is installed: train one (see the "
                     "README) or start the app with `--checkpoint DIR`.")
    return "\n".join(lines)


def build_app(checkpoint: str | os.PathLike = HERE / "checkpoints", device: str = "auto",
              max_seconds: float = 60.0, output_root: str | os.PathLike | None = None) -> gr.Blocks:
    """The Blocks app, with its models loaded; call ``.launch()`` on it (see :func:`main`)."""
    checkpoints = find_checkpoints(checkpoint)
    # Under the system's temp folder, from where Gradio may serve files without allowed_paths.
    output_root = Path(output_root or Path(tempfile.gettempdir()) / "talking-app")
    handler = RequestHandler(checkpoints, OutputFolders(output_root), device, max_seconds)
    failures = handler.load()
    on_space = bool(os.environ.get("SPACE_ID"))
    default_variant = next(iter(checkpoints), "optical")

    with gr.Blocks(title="talking", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(
            "# talking\nOne face photo and some speech in, a lip-synced talking video out "
            "([MAN](https://arxiv.org/abs/2012.07304): multimodal adaptive normalization).")
        notice = checkpoint_notice(checkpoints, failures, Path(checkpoint))
        if notice:
            gr.Markdown(notice, elem_id="checkpoint-notice")
        with gr.Row():
            with gr.Column():
                face = gr.Image(label="Face photo", sources=["upload", "webcam", "clipboard"],
                                type="filepath", image_mode=None, height=320, elem_id="face")
                speech = gr.Audio(label=f"Speech (up to {max_seconds:.0f} s)", type="filepath",
                                  sources=["upload", "microphone"], elem_id="speech")
                # Side by side where both fit, one above the other on a phone (390 px).
                with gr.Row():
                    text = gr.Textbox(label="…or text to speak", max_length=MAX_TEXT, lines=3,
                                      placeholder="Used when there is no speech clip", scale=3,
                                      min_width=240, elem_id="text")
                    voice = gr.Dropdown(VOICES, value=VOICES[0][1], label="Voice", scale=2,
                                        min_width=200, allow_custom_value=True, elem_id="voice",
                                        info="or any espeak-ng voice: sv, en-gb+f4, …")
                variant = gr.Radio(
                    [(name if v in checkpoints else f"{name} (not installed)", v)
                     for v, name in VARIANTS.items()], value=default_variant, label="Model")
                with gr.Accordion("Advanced", open=False):
                    seed = gr.Number(None, precision=0, minimum=0, label="Seed",
                                     info="Empty: the predicted motion. A number draws a speaking "
                                          "style (how wide the mouth opens); the same number gives "
                                          "the same video.")
                    crop_only = gr.Checkbox(
                        False, label="Crop only",
                        info="Return the aligned face crop talking, without pasting it back "
                             "into the photo.")
                    transcript = gr.Textbox(
                        "", label="Words said in the speech clip", max_length=MAX_TEXT, lines=2,
                        elem_id="transcript",
                        info="Optional, English. The lips then shut on every p, b and m, timed "
                             "in the clip (about 0.1 s per second of speech). Typed text does "
                             "this by itself.")
                    clean_speech = gr.Checkbox(
                        False, label="Music or noise under the voice", elem_id="clean-speech",
                        info="The mouth then follows the voice alone (about 0.25 s more per "
                             "second of speech); the video keeps the clip's sound.")
                button = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column():
                video = gr.Video(label="Talking video", interactive=False, autoplay=True, elem_id="video")
                crop = gr.Image(label="What the model saw", type="numpy",
                                format="png", interactive=False, height=200, elem_id="crop")
        inputs = [face, speech, text, voice, variant, seed, crop_only, transcript, clean_speech]
        button.click(handler, inputs, [video, crop], api_name="generate",
                     concurrency_id="generate", preprocess=False)

        example_rows = [[str(EXAMPLES / "face-1.jpg"), str(EXAMPLES / "speech.wav"), ""],
                        [str(EXAMPLES / "face-2.jpg"), None, "Good morning! The weather is lovely "
                                                             "today, isn't it?"]]
        # Labelled buttons rather than a table, whose columns run off a phone's screen.
        example_labels = ["Face 1 saying a recorded sentence",
                          "Face 2 saying: Good morning! The weather is lovely today, isn't it?"]
        if on_space:  # generated once, on first use, then served from the cache to everyone
            def run_example(face, speech, text, progress=gr.Progress()):
                return handler(face, speech, text, VOICES[0][1], default_variant, None, False, "",
                               progress)

            gr.Examples(example_rows, [face, speech, text], [video, crop], fn=run_example,
                        cache_examples=True, cache_mode="lazy", example_labels=example_labels,
                        elem_id="examples")
        else:  # a click fills the inputs, then generates with the chosen model and options
            examples = gr.Examples(example_rows, [face, speech, text], cache_examples=False,
                                   example_labels=example_labels, elem_id="examples")
            examples.load_input_event.then(handler, inputs, [video, crop],
                                           concurrency_id="generate", preprocess=False,
                                           api_visibility="undocumented")
    demo.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
    return demo


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="talking's web app")
    parser.add_argument("--checkpoint", default=str(HERE / "checkpoints"),
                        help="a pipeline folder, or a folder holding man-optical/ and man-keypoint/")
    parser.add_argument("--host", default="0.0.0.0" if os.environ.get("SPACE_ID") else "127.0.0.1",
                        help="address to listen on (default 127.0.0.1; 0.0.0.0 on a Space)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="ask Gradio for a public link")
    parser.add_argument("--device", default="auto", help="torch device; auto = cuda if available")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="longest speech accepted")
    return parser.parse_args(argv)


def seconds_since_start() -> float:
    """Seconds since this process started, interpreter start-up and imports included."""
    import psutil

    return time.time() - psutil.Process().create_time()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    imported = seconds_since_start()
    demo = build_app(args.checkpoint, args.device, args.max_seconds)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share,
                max_file_size=MAX_FILE_SIZE, allowed_paths=[str(EXAMPLES)], prevent_thread_lock=True)
    ready = seconds_since_start()
    logger.info("ready in %.1f s (imports %.1f s, models, page and server %.1f s)", ready, imported,
                ready - imported)
    demo.block_thread()


if __name__ == "__main__":
    main()
