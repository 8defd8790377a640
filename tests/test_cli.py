"""The command line: subcommands listed, bad input reported in one line with a non-zero exit."""

import subprocess
import sys

import numpy as np
import soundfile


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
