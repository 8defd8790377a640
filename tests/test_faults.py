"""Faults: damaged checkpoints are refused with one clear error, never unpickled; training killed
at any moment (a checkpoint half written included) resumes to the very weights of a run that was
never interrupted.

The training tests run ``train/train_man.py`` in a subprocess on a tiny corpus, kill it with
SIGKILL and resume it with ``--resume``; they are marked slow.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
import soundfile
import torch
from appserver import fresh_checkpoint
from faces import photo_with_face
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.torch import load_file

from talking.errors import TalkingError
from talking.generate import GenerateOptions, generate_video, load_pipeline
from talking.training.checkpoints import latest_checkpoint

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = "generator/diffusion_pytorch_model.safetensors"
FEW = settings(max_examples=10, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return fresh_checkpoint(tmp_path_factory.mktemp("checkpoint") / "man-optical")


def damaged_copy(checkpoint: Path, folder: Path) -> Path:
    """A copy of ``checkpoint`` in ``folder``, to be damaged (load_pipeline caches by folder)."""
    return Path(shutil.copytree(checkpoint, folder / "man-optical"))


def refused_or_loaded(folder: Path) -> TalkingError | None:
    """load_pipeline(folder): None when it loads, the TalkingError when it is refused; any
    other exception fails the test."""
    try:
        load_pipeline(folder, "cpu")
    except TalkingError as error:
        return error
    return None


class Unpickled:
    """A pickle that, when unpickled, leaves a file at ``marker``: proof that it was."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


# ---------------------------------------------------------------------------------------------
# Checkpoints load from safetensors and JSON only
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["diffusion_pytorch_model.bin", "pytorch_model.bin",
                                  "diffusion_pytorch_model.ckpt"])
def test_weights_replaced_by_a_pickle_are_refused_without_unpickling_it(checkpoint, face_and_speech, tmp_path,
                                                                       name):
    folder = damaged_copy(checkpoint, tmp_path)
    marker = tmp_path / "unpickled"
    (folder / WEIGHTS).unlink()
    (folder / "generator" / name).write_bytes(pickle.dumps(Unpickled(marker)))
    with pytest.raises(TalkingError, match=f"checkpoint in {folder} is damaged or incomplete"):
        load_pipeline(folder, "cpu")
    with pytest.raises(TalkingError, match="damaged or incomplete"):
        generate_video(*face_and_speech, tmp_path / "talking.mp4", GenerateOptions(checkpoint=str(folder)))
    assert not marker.exists()
    assert not (tmp_path / "talking.mp4").exists()


def test_a_pickle_beside_the_safetensors_is_never_opened(checkpoint, tmp_path, monkeypatch):
    folder = damaged_copy(checkpoint, tmp_path)
    marker = tmp_path / "unpickled"
    for component in ("generator", "motion_predictor"):
        (folder / component / "diffusion_pytorch_model.bin").write_bytes(
            pickle.dumps(Unpickled(marker)))

    def no_unpickling(*args, **kwargs):
        raise AssertionError("a checkpoint was unpickled")

    for module, name in [(torch, "load"), (torch.serialization, "load"), (pickle, "load"),
                         (pickle, "loads"), (pickle, "Unpickler")]:
        monkeypatch.setattr(module, name, no_unpickling)
    assert load_pipeline(folder, "cpu").variant == "optical"
    assert not marker.exists()


@FEW
@given(offset=st.floats(0.0, 1.0, exclude_max=True), mask=st.integers(1, 255))
@example(offset=0.0, mask=0xFF)  # the header's length
@example(offset=0.001, mask=0x20)  # inside the JSON header
def test_flipped_bytes_in_the_weights_load_as_that_one_number_changed_or_are_refused(checkpoint, offset,
                                                                                    mask):
    """safetensors has no checksum: a flip in the numbers loads as one other number, every other
    weight as saved (nothing re-initialised or dropped); a flip in the header, or one that makes
    a weight NaN or infinite, is refused."""
    original = load_pipeline(checkpoint, "cpu").generator.state_dict()
    with tempfile.TemporaryDirectory() as tmp:
        folder = damaged_copy(checkpoint, Path(tmp))
        data = bytearray((folder / WEIGHTS).read_bytes())
        data[int(offset * len(data))] ^= mask
        (folder / WEIGHTS).write_bytes(bytes(data))
        error = refused_or_loaded(folder)
        if error is not None:
            assert "damaged" in str(error)
            return
        loaded = load_pipeline(folder, "cpu").generator.state_dict()
    assert loaded.keys() == original.keys()
    changed = sum(int((loaded[k] != original[k]).sum()) for k in original)
    assert changed <= 1


def test_weights_made_nan_are_refused(checkpoint, tmp_path):
    folder = damaged_copy(checkpoint, tmp_path)
    data = bytearray((folder / WEIGHTS).read_bytes())
    data[-400:] = np.full(100, np.nan, np.float32).tobytes()  # the last tensor's last values
    (folder / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(TalkingError, match="generator.* NaN or infinite"):
        load_pipeline(folder, "cpu")


@FEW
@given(kept=st.floats(0.0, 1.0, exclude_max=True),
       file=st.sampled_from([WEIGHTS, "motion_predictor/diffusion_pytorch_model.safetensors"]))
def test_truncated_weights_are_refused(checkpoint, kept, file):
    with tempfile.TemporaryDirectory() as tmp:
        folder = damaged_copy(checkpoint, Path(tmp))
        data = (folder / file).read_bytes()
        (folder / file).write_bytes(data[: int(len(data) * kept)])
        error = refused_or_loaded(folder)
    assert error is not None and "damaged or incomplete" in str(error)


@pytest.fixture(scope="module")
def face_and_speech(tmp_path_factory) -> tuple[Path, Path]:
    """A photo with a face, and a second of silence."""
    folder = tmp_path_factory.mktemp("inputs")
    Image.fromarray(photo_with_face(seed=1, x=200, y=100, size=256)[0]).save(folder / "face.png")
    soundfile.write(folder / "speech.wav", np.zeros(22050, np.float32), 22050)
    return folder / "face.png", folder / "speech.wav"


CONFIGS = ["model_index.json", "generator/config.json", "motion_predictor/config.json"]


@FEW
@given(file=st.sampled_from(CONFIGS), garbage=st.binary(max_size=300))
def test_a_config_file_of_garbage_is_refused(checkpoint, file, garbage):
    with tempfile.TemporaryDirectory() as tmp:
        folder = damaged_copy(checkpoint, Path(tmp))
        (folder / file).write_bytes(garbage)
        error = refused_or_loaded(folder)
    assert error is not None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 300) | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children,
                                                                      max_size=3),
    max_leaves=8)


@FEW
@given(file=st.sampled_from(CONFIGS), key=st.integers(0, 1000), value=json_values)
def test_a_config_setting_of_garbage_is_refused_or_still_makes_a_video(checkpoint, face_and_speech,
                                                                      file, key, value):
    """Sizes stay small here: a size beyond the weights' is a different model, refused on the
    weights' shapes."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = damaged_copy(checkpoint, Path(tmp))
        config = json.loads((folder / file).read_text())
        config[sorted(config)[key % len(config)]] = value
        (folder / file).write_text(json.dumps(config))
        output = Path(tmp) / "talking.mp4"
        try:
            generate_video(*face_and_speech, output,
                           GenerateOptions(checkpoint=str(folder), crop_only=True))
        except TalkingError as error:
            event("refused")
            assert "damaged" in str(error) and not output.exists()
            return
        event("made a video")
        with imageio.get_reader(output) as video:  # a whole second of the silence, frame by frame
            assert video.count_frames() == 25


# ---------------------------------------------------------------------------------------------
# Training killed at any moment resumes exactly
# ---------------------------------------------------------------------------------------------

STEPS, SAVE_EVERY = 24, 4
# One torch thread in every run, so that interrupted and uninterrupted runs do the same arithmetic.
TRAIN_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
MODEL_FILES = tuple(f"{network}/diffusion_pytorch_model.safetensors"
                    for network in ("generator", "motion_predictor", "discriminator"))
# Runs train_man.py with Accelerate's save_state patched to tear the generator's weights in half
# and SIGKILL the process once it has written checkpoint step-N (argv[1]), before the folder is
# marked complete and renamed: what a kill in the middle of a save leaves behind.
DIE_WHILE_SAVING = """
import os, runpy, signal, sys
from pathlib import Path
from accelerate import Accelerator

save_state, die_at = Accelerator.save_state, sys.argv.pop(1)

def save_then_die(self, output_dir=None, **kwargs):
    result = save_state(self, output_dir, **kwargs)
    if Path(output_dir).name == f".partial-step-{die_at}":
        weights = Path(output_dir) / "generator" / "diffusion_pytorch_model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    return result

Accelerator.save_state = save_then_die
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_config(corpus: Path, folder: Path) -> Path:
    """A tiny stage-2 run's YAML: STEPS steps at 64 px, a checkpoint every SAVE_EVERY."""
    from talking.training.config import TrainConfig

    config = TrainConfig(name="run", corpus=str(corpus), resolution=64, steps=STEPS,
                         batch_size=2, num_workers=0, save_every=SAVE_EVERY, log_every=1,
                         sample_every=STEPS, output_dir=str(folder / "runs"))
    path = folder / "run.yaml"
    path.write_text(config.to_yaml())
    return path


def train(*arguments: str) -> subprocess.CompletedProcess:
    """train/train_man.py ARGUMENTS, to the end."""
    return subprocess.run([sys.executable, str(REPO / "train" / "train_man.py"), *arguments],
                          env=TRAIN_ENV, cwd=REPO, capture_output=True, text=True, timeout=600,
                          check=True)


def kill_at_step(config: Path, step: int, delay: float) -> None:
    """Start training and SIGKILL it ``delay`` seconds after its progress bar shows ``step``
    steps done: in a step, or in a checkpoint's save."""
    process = subprocess.Popen([sys.executable, str(REPO / "train" / "train_man.py"), "--config",
                                str(config)], env=TRAIN_ENV, cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    log, timer = b"", None
    try:
        while chunk := process.stderr.read1(4096):
            log += chunk
            counts = re.findall(rb"(\d+)/%d \[" % STEPS, log[-4096:])
            if timer is None and counts and int(counts[-1]) >= step:
                timer = threading.Timer(delay, process.send_signal, (signal.SIGKILL,))
                timer.start()
    finally:
        process.wait(timeout=600)
    assert process.returncode == -signal.SIGKILL, log.decode(errors="replace")[-2000:]


def assert_checkpoints_are_complete(run: Path) -> None:
    """Every step-N folder is whole: its step.json and weights load."""
    for folder in (run / "checkpoints").glob("step-*"):
        assert json.loads((folder / "step.json").read_text())["step"] == int(folder.name[5:])
        for name in MODEL_FILES:
            load_file(folder / name)


def assert_same_final_weights(run: Path, reference: Path) -> None:
    assert json.loads((run / "final.json").read_text())["step"] == STEPS
    assert latest_checkpoint(run).name == f"step-{STEPS}"
    for name in MODEL_FILES:
        expected = load_file(reference / "checkpoints" / f"step-{STEPS}" / name)
        actual = load_file(run / "checkpoints" / f"step-{STEPS}" / name)
        for key, value in expected.items():
            torch.testing.assert_close(actual[key], value, rtol=0, atol=0, msg=f"{name}: {key}")


@pytest.fixture(scope="module")
def uninterrupted(corpus, tmp_path_factory) -> Path:
    """The run folder of the same run, never interrupted."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    train("--config", str(run_config(corpus, folder)))
    return folder / "runs" / "run"


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_training_killed_at_a_random_moment_resumes_to_the_same_weights(corpus, uninterrupted,
                                                                        tmp_path, seed):
    rng = random.Random(seed)
    config = run_config(corpus, tmp_path)
    run = tmp_path / "runs" / "run"
    kill_at_step(config, step=rng.randint(1, STEPS - 4), delay=rng.uniform(0.0, 0.3))

    assert not (run / "final.json").exists()
    assert_checkpoints_are_complete(run)
    resumed_from = latest_checkpoint(run)
    result = train("--config", str(config), "--resume")
    if resumed_from is not None:
        assert f"resumed from {resumed_from} at step {resumed_from.name[5:]}" in result.stdout
    assert_same_final_weights(run, uninterrupted)


@pytest.mark.slow
def test_training_killed_while_saving_a_checkpoint_resumes_from_the_one_before(corpus, uninterrupted,
                                                                              tmp_path):
    config = run_config(corpus, tmp_path)
    run = tmp_path / "runs" / "run"
    torn = 3 * SAVE_EVERY
    died = subprocess.run([sys.executable, "-c", DIE_WHILE_SAVING, str(torn),
                           str(REPO / "train" / "train_man.py"), "--config", str(config)],
                          env=TRAIN_ENV, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert died.returncode == -signal.SIGKILL, died.stderr[-2000:]

    assert (run / "checkpoints" / f".partial-step-{torn}").is_dir()  # the torn save
    assert not (run / "checkpoints" / f"step-{torn}").exists()
    assert latest_checkpoint(run).name == f"step-{torn - SAVE_EVERY}"
    assert_checkpoints_are_complete(run)
    result = train("--config", str(config), "--resume")
    assert f"at step {torn - SAVE_EVERY}" in result.stdout
    assert not (run / "checkpoints" / f".partial-step-{torn}").exists()
    assert_same_final_weights(run, uninterrupted)
