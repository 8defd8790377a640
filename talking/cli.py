"""Command line: ``python -m talking <command>`` (also the ``talking`` console script).

Each command's flags are generated one-to-one from a config dataclass (see
:func:`add_dataclass_arguments`), so defaults have a single source. Only the command being run
has its flags built (that may import its module), and heavy imports happen inside the command
functions, so ``python -m talking --help`` and a bad flag answer at once. A bad flag or a
:class:`TalkingError` becomes one line on stderr and exit code 2. SIGTERM (``timeout``, a
container stop, CI cancellation) unwinds the program like Ctrl-C, so that nothing half-written
is left behind; it exits with 143.

A new command is a function decorated with :func:`command`, with a function that adds its flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import signal
import sys
import types
import typing
import warnings
from collections.abc import Callable, Sequence

from talking.errors import TalkingError, TalkingWarning


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one ``--flag`` per field of dataclass ``cls`` (underscores become dashes)."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        flag = "--" + field.name.replace("_", "-")
        kind = hints[field.name]
        default = field.default if field.default is not dataclasses.MISSING else None
        if field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        help_text = field.metadata.get("help", "")
        if kind is bool:
            parser.add_argument(flag, dest=field.name, action=argparse.BooleanOptionalAction,
                                default=default, help=help_text)
            continue
        optional = [a for a in typing.get_args(kind) if a is not type(None)]
        if typing.get_origin(kind) in (typing.Union, types.UnionType) and len(optional) == 1:
            kind = optional[0]  # `int | None` -> int
        parser.add_argument(flag, dest=field.name, type=kind, default=default,
                            required=field.default is dataclasses.MISSING
                            and field.default_factory is dataclasses.MISSING,
                            help=f"{help_text} (default: {default})".strip())


def dataclass_from_args(cls: type, args: argparse.Namespace):
    """Build ``cls`` from the parsed flags that :func:`add_dataclass_arguments` added; a value
    its ``__post_init__`` refuses becomes a :class:`TalkingError`."""
    try:
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if f.init})
    except ValueError as error:
        raise TalkingError(str(error)) from error


Command = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Command]] = {}


def command(name: str, help_text: str, configure: Callable[[argparse.ArgumentParser], None]):
    """Register ``fn(args) -> exit code`` as subcommand ``name``; ``configure`` adds its flags."""

    def register(fn: Command) -> Command:
        COMMANDS[name] = (help_text, configure, fn)
        return fn

    return register


def _features_flags(parser: argparse.ArgumentParser) -> None:
    from talking.config import AudioConfig

    parser.add_argument("audio", help="speech file (wav, mp3, ogg, flac, m4a, ...)")
    parser.add_argument("--output", required=True, help="where to write the features (.npz)")
    add_dataclass_arguments(parser, AudioConfig)


@command("features", "extract the paper's audio features (mel, pitch, energy) to an .npz", _features_flags)
def _features(args: argparse.Namespace) -> int:
    from talking.audio import extract_features, load_audio
    from talking.config import AudioConfig

    config = dataclass_from_args(AudioConfig, args)
    features = extract_features(load_audio(args.audio, config=config), config)
    features.save(args.output)
    print(f"{args.output}: {features.num_video_frames} video frames, {len(features.mel)} mel frames")
    return 0


def config_command(name: str, help_text: str, module: str, config: str, run: str) -> None:
    """Register subcommand ``name`` whose flags are dataclass ``module.config`` and which calls
    ``module.run(config)``; the module is imported only when the command runs or shows its help."""

    def configure(parser: argparse.ArgumentParser) -> None:
        add_dataclass_arguments(parser, getattr(importlib.import_module(module), config))

    def execute(args: argparse.Namespace) -> int:
        loaded = importlib.import_module(module)
        getattr(loaded, run)(dataclass_from_args(getattr(loaded, config), args))
        return 0

    COMMANDS[name] = (help_text, configure, execute)


config_command("prepare", "turn a folder of real talking-face videos (GRID, CREMA-D, LRS, VoxCeleb, "
               "HDTF) into a corpus of aligned clips", "talking.prepare", "PrepareConfig", "prepare_corpus")
config_command("corpus", "build the synthetic audio-visual speech corpus (espeak-ng speech, drawn talking "
               "faces, exact ground truth)", "talking.corpus.build", "CorpusConfig", "build_corpus")
config_command("natural-speech", "build a set of natural-voice English speech (Kokoro-82M voices) with "
               "phoneme timing and mouth targets, to train the motion predictor on", "talking.corpus.natural",
               "NaturalSpeechConfig", "build_natural_speech")


def _generate_flags(parser: argparse.ArgumentParser) -> None:
    from talking.generate import GenerateOptions

    parser.add_argument("--image", required=True, help="photo with one roughly frontal face")
    parser.add_argument("--audio", help="speech (wav, mp3, ogg, flac, m4a, ...); or give --text")
    parser.add_argument("--output", required=True, help="the video to write (.mp4)")
    add_dataclass_arguments(parser, GenerateOptions)


@command("generate", "make a talking video (mp4) of the face in a photo saying the speech",
         _generate_flags)
def _generate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from talking.generate import GenerateOptions, generate_video

    options = dataclass_from_args(GenerateOptions, args)
    bar = None  # opened at the first frame, so that a bad input leaves stderr one line

    def progress(done: int, total: int) -> None:
        nonlocal bar
        bar = bar or tqdm(total=total, unit="frame", desc="generating", disable=None)
        bar.update(done - bar.n)

    try:
        video = generate_video(args.image, args.audio, args.output, options, progress)
    finally:
        if bar is not None:
            bar.close()
    print(f"{video.path}: {video.num_frames} frames, {video.duration:.2f} s, "
          f"{video.variant} model from {video.checkpoint}")
    return 0


def _evaluate_flags(parser: argparse.ArgumentParser) -> None:
    from talking.evaluate import EvaluateOptions
    from talking.evaluate_real import RealOptions

    parser.add_argument("--checkpoint", nargs="*", default=[], metavar="DIR",
                        help="pipeline folders to evaluate, e.g. checkpoints/man-optical "
                        "checkpoints/man-keypoint")
    parser.add_argument("--real", action="store_true",
                        help="instead of a corpus split: real photos and real speech that ship in "
                        "installed packages, judged by MediaPipe Face Mesh (talking.evaluate_real)")
    add_dataclass_arguments(parser, EvaluateOptions)
    add_dataclass_arguments(parser, RealOptions)


@command("evaluate", "the paper's metrics (SSIM, PSNR, CPBD, LMD, blinks/s, sync) over a corpus split, "
         "for MAN checkpoints and baselines: a markdown table, JSON and plots", _evaluate_flags)
def _evaluate(args: argparse.Namespace) -> int:
    from talking.evaluate import EvaluateOptions, evaluate

    if args.real:
        return _evaluate_real(args)
    options = dataclass_from_args(EvaluateOptions, args)
    report = evaluate(args.checkpoint, options)
    print(f"{options.out}: results.md, results.json, metrics.png, sync.png, drift.png, frames.png "
          f"({report['clips']} clips; {', '.join(report['methods'])})")
    return 0


def _evaluate_real(args: argparse.Namespace) -> int:
    from talking.evaluate_real import RealOptions, evaluate_real

    options = dataclass_from_args(RealOptions, args)
    report = evaluate_real(args.checkpoint, options, args.device)
    print(f"{options.real_out}: results.md, results.json, contact sheets ({len(report['photos'])} photos, "
          f"{len(report['speech'])} clips; {', '.join(report['methods'])})")
    return 0


class _OneLineParser(argparse.ArgumentParser):
    """argparse, with a bad flag reported in one line (and ``--help`` for the usage)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class Terminated(BaseException):
    """SIGTERM, raised wherever the program is, so that every ``with`` block cleans up. Not an
    Exception, so that no ``except Exception`` takes it for a failure."""


def _raise_terminated(signum: int, frame) -> None:
    raise Terminated(signum)


_default_showwarning = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A TalkingWarning as one line, as errors are printed; other warnings as Python shows them."""
    if issubclass(category, TalkingWarning):
        print(f"warning: {message}", file=sys.stderr)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


def build_parser(command_name: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command; only ``command_name``'s flags are added."""
    parser = _OneLineParser(prog="talking", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, configure, _) in COMMANDS.items():
        subparser = sub.add_parser(name, help=help_text, description=help_text)
        if name == command_name:
            configure(subparser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # The first word that is not an option is the command: the top-level parser has none but -h.
    name = next((word for word in argv if not word.startswith("-")), None)
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        args = build_parser(name).parse_args(argv)
        with warnings.catch_warnings():
            warnings.simplefilter("default", TalkingWarning)
            warnings.showwarning = _show_warning
            return COMMANDS[args.command][2](args)
    except TalkingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)
