"""The command line: subcommands listed, bad input reported in one line with a non-zero exit."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from talking.cli import main


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "talking", *args], capture_output=True, text=True,
                          timeout=120)


def test_help_lists_subcommands():
    result = run("--help")
    assert result.returncode == 0
    assert "features" in result.stdout


def test_features_command_writes_npz(tmp_path):
    t = np.arange(22050) / 22050
    soundfile.write(tmp_path / "tone.wav", 0.3 * np.sin(2 * np.pi * 200 * t), 22050)
    result = run("features", str(tmp_path / "tone.wav"), "--output", str(tmp_path / "f.npz"))
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / "f.npz") as data:
        assert int(data["num_video_frames"]) == 25


def test_bad_audio_gives_one_line_and_nonzero_exit(tmp_path):
    (tmp_path / "bad.wav").write_text("definitely not audio")
    result = run("features", str(tmp_path / "bad.wav"), "--output", str(tmp_path / "f.npz"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: bad.wav")
    assert not (tmp_path / "f.npz").exists()


def test_help_imports_no_heavy_module():
    """``python -m talking --help`` and ``generate --help`` once took 5-10 s importing torch."""
    code = ("import sys\nfrom talking.cli import main\n"
            "for argv in (['--help'], ['generate', '--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit as exit:\n        assert exit.code == 0\n"
            "print(sorted({'torch', 'diffusers', 'gradio', 'librosa'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert "--max-seconds" in result.stdout


@pytest.mark.parametrize(("flags", "message"), [
    (["--max-seconds", "inf"], "max_seconds .* got inf"),
    (["--max-seconds", "nan"], "max_seconds .* got nan"),
    (["--max-seconds", "-1"], "max_seconds .* at least 0.2, got -1.0"),
    (["--seed", str(2**70)], "seed must be between 0 and 2\\*\\*64 - 1"),
    (["--seed", "-1"], "seed must be between"),
    (["--threads", "0"], "threads must be between 1 and"),
    (["--max-side", "8"], "max_side must be at least 16"),
    (["--seed", "2**70"], "argument --seed: invalid int value"),
    (["--text", "Hello.", "--voice", "en+f3+m1"], "not an espeak-ng voice name"),
], ids=["inf", "nan", "negative", "huge-seed", "negative-seed", "threads", "max-side", "seed-text",
        "voice"])
def test_every_bad_flag_is_one_line_and_exit_2_before_any_input_is_read(tmp_path, capsys, flags,
                                                                         message):
    (tmp_path / "speech.wav").write_text("never read: the flags are checked first")
    argv = ["generate", "--image", str(tmp_path / "missing.png"), "--audio",
            str(tmp_path / "speech.wav"), "--output", str(tmp_path / "out.mp4"), *flags]
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse's own errors
        code = exit.code
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(lines) == 1 and re.search(message, lines[0]), lines
    assert "speech.wav" not in lines[0] and "missing.png" not in lines[0]


SIGTERM_MIDWAY = """
import os, signal, sys, time
import numpy as np
from talking import cli
from talking.video import VideoWriter

@cli.command("write-and-wait", "write a video, then wait to be stopped", lambda parser: None)
def write_and_wait(args):
    with VideoWriter(sys.argv[1], np.zeros(22050, np.float32)) as writer:
        writer.write(np.zeros((16, 16, 3), np.uint8))
        print(*sorted(os.listdir(os.path.dirname(sys.argv[1]))), flush=True)
        os.kill(os.getpid(), signal.SIGTERM)  # as `timeout` or a container stop sends it
        time.sleep(30)
    return 0

sys.exit(cli.main(["write-and-wait"]))
"""


def test_sigterm_midway_unwinds_and_leaves_no_partial_file(tmp_path):
    """SIGTERM once killed the CLI where it stood, leaving a playable hidden partial mp4 beside
    the output and the speech as a wav in /tmp."""
    (tmp_path / "tmp").mkdir()
    result = subprocess.run([sys.executable, "-c", SIGTERM_MIDWAY, str(tmp_path / "out" / "talk.mp4")],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "TMPDIR": str(tmp_path / "tmp")})
    staged = result.stdout.split()
    assert len(staged) == 2 and all(".partial." in name for name in staged)  # video and wav
    assert (result.returncode, result.stderr.strip()) == (143, "terminated")
    assert list((tmp_path / "out").iterdir()) == []
    assert list((tmp_path / "tmp").iterdir()) == []
