"""README.md is run, not trusted: every ``gankit`` command in its ```bash blocks runs here, in order,
against tiny fixture data placed where the README says the data is, in a temporary HOME, cache and
working folder; each must exit 0 and write what it promises. Train commands get a small
``--max-steps`` and ``--batch-size`` (and nothing else), so the README's own options are what runs.

A command line that is not gankit's (make, pip, source, GPU torchrun lines) must be listed in
``NOT_RUN`` with the reason, so a new README command cannot slip past this test.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FIXTURES, ROOT, write_idx_dataset
from PIL import Image

from gankit.cli import main

README = ROOT / "README.md"

NOT_RUN = {
    "make": "installs a venv / runs the whole suite (CI runs `make test` itself)",
    "source": "shell activation",
    "pip": "installation",
    "python": "scripts run by their own tests",
    "torchrun --nproc_per_node 4": "needs 4 GPUs",
    "torchrun --nnodes": "needs two machines",
    "export": "shell variable",
    "cd": "shell navigation",
    "tensorboard": "TensorBoard's own viewer (a server)",
    "gankit serve": "a web server that runs until stopped (tests/test_serve*.py drive it)",
}
TRAIN_STEPS = 2
TRAIN_BATCH = 4


def bash_commands(text: str) -> list[str]:
    """Command lines of the ```bash blocks: comments dropped, backslash continuations joined."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = re.sub(r"(^|\s)#.*$", "", line).strip()
            if line:
                commands.append(line)
    return commands


def _is_gankit(cmd: str) -> bool:
    runnable = cmd.startswith(("gankit ", "python -m gankit ", "torchrun --nproc_per_node 2 "))
    return runnable and not cmd.startswith("gankit serve")


def test_every_readme_command_is_run_or_explained() -> None:
    commands = bash_commands(README.read_text())
    assert sum(_is_gankit(c) for c in commands) >= 10
    for cmd in commands:
        assert _is_gankit(cmd) or any(cmd.startswith(p) for p in NOT_RUN), f"README command not covered: {cmd}"


# ------------------------------------------------------------------------------ fixture data


def _photo(path: Path, seed: int, size: tuple[int, int] = (72, 60)) -> None:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (3, 3, 3), dtype=np.uint8)
    img = Image.fromarray(base).resize(size, Image.Resampling.BILINEAR)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def _cmp_base_set(root: Path, n: int = 12) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(1, n + 1):
        idx = np.full((60, 48), 1 + i % 12, dtype=np.uint8)
        idx[20:40, 10:30] = 3
        Image.fromarray(idx).convert("P").save(root / f"cmp_b{i:04d}.png")
        _photo(root / f"cmp_b{i:04d}.jpg", i, (48, 60))


def _make_world(home: Path, work: Path, data: Path) -> None:
    """The data where the README says it is: Fashion-MNIST in $GANKIT_DATA, faces, facades, photos."""
    write_idx_dataset(data / "fashion-mnist", n_train=200, n_test=50)
    write_idx_dataset(data / "mnist", n_train=200, n_test=50)
    for i in range(12):
        _photo(home / "data" / "celeba" / "img_align_celeba" / f"{i + 1:06d}.jpg", i, (44, 54))
        _photo(home / "celeba" / f"{i + 1:06d}.jpg", i, (44, 54))
    for i in range(8):
        _photo(home / "photos" / ("trip" if i % 2 else "home") / f"p{i}.jpg", 100 + i)
    _cmp_base_set(work / "path" / "to" / "cmp-facades-base")
    _cmp_base_set(work / "facades")
    idx = np.full((60, 48), 2, dtype=np.uint8)
    idx[10:30, 10:30] = 5
    Image.fromarray(idx).convert("P").save(work / "labels.png")
    _photo(work / "old_photo.jpg", 7, (90, 70))
    # reference checkpoints as the reference repositories write them (plain state dicts)
    fixtures = FIXTURES / "interop"
    for name, dest in (
        ("jz_unet128_ngf4_batch_G.pt", "checkpoints/facades_pix2pix/latest_net_G.pth"),
        ("jz_basic_ndf8_batch_D.pt", "checkpoints/facades_pix2pix/latest_net_D.pth"),
        ("jz_unet128_ngf4_instance_1to2_G.pt", "checkpoints/color_pix2pix/latest_net_G.pth"),
        ("pe_dcgan_nz16_ngf8_G.pt", "netG_epoch_24.pth"),
        ("pe_dcgan_ndf8_D.pt", "netD_epoch_24.pth"),
    ):
        (work / dest).parent.mkdir(parents=True, exist_ok=True)
        torch.save(torch.load(fixtures / name, weights_only=True)["state_dict"], work / dest)
    _photo(work / "photo.jpg", 8, (90, 70))


# ------------------------------------------------------------------------------ running


def _newest(pattern: str, work: Path) -> str:
    runs = sorted(work.glob(pattern), key=lambda p: p.stat().st_mtime)
    assert runs, f"README refers to {pattern} but no such run exists yet"
    return str(runs[-1].relative_to(work))


def _resolve(argv: list[str], work: Path) -> list[str]:
    """``runs/cgan-...`` -> the newest matching run; ``~`` -> the temporary HOME."""
    out = []
    for a in argv:
        m = re.fullmatch(r"(runs/[\w-]*?)-?\.\.\.", a)
        out.append(_newest(m.group(1) + "*", work) if m else os.path.expanduser(a))
    return out


def _train_argv(argv: list[str], work: Path) -> list[str]:
    argv = list(argv)
    if "--max-steps" not in argv:
        steps = TRAIN_STEPS
        if "--resume" in argv:  # continue a little further than the run it resumes
            steps *= 2
        argv += ["--max-steps", str(steps)]
    if "--batch-size" not in argv:
        argv += ["--batch-size", str(TRAIN_BATCH)]
    return argv + ["--no-progress"]


def _outputs(argv: list[str]) -> dict[str, str]:
    return {k: argv[i + 1] for i, k in enumerate(argv[:-1]) if k in ("--out", "--grid")}


def _check_promise(argv: list[str], work: Path, before: set[Path]) -> None:
    cmd, outs = argv[0], _outputs(argv)
    if cmd == "train" and argv[1] != "classifier":
        new = set(work.glob("runs/*")) - before
        run = work / outs["--out"] if "--out" in outs else max(new, key=lambda p: p.stat().st_mtime)
        for name in ("config.yaml", "run.json", "stats.jsonl", "checkpoints/G_last.pt", "checkpoints/last.pt"):
            assert (run / name).is_file(), f"{' '.join(argv)}: no {name} in {run}"
        assert any((run / "samples").glob("*.png")), f"{' '.join(argv)}: no sample grid"
    elif cmd == "sample":
        n = int(argv[argv.index("--n") + 1])
        assert len(list((work / outs["--out"]).glob("*.png"))) >= n
        if "--grid" in outs:
            assert (work / outs["--grid"]).is_file()
    elif cmd in ("translate", "colorize"):
        assert any((work / outs["--out"]).rglob("*.*")), f"{' '.join(argv)}: nothing written"
    elif cmd == "export":
        assert (work / outs["--out"]).is_file()
    elif cmd == "import":
        assert (work / outs["--out"] / "checkpoints" / "G_last.pt").is_file()
    elif cmd == "report":
        assert (work / outs.get("--out", f"{argv[1]}/report.html")).is_file()
    elif cmd == "eval" and "--real" not in argv:
        assert (work / argv[1] / "eval.jsonl").is_file()


@pytest.mark.slow
def test_readme_commands_run_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    home, work, data = tmp_path / "home", tmp_path / "work", tmp_path / "gankit_data_env"
    work.mkdir()
    _make_world(home, work, data)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("TORCH_HOME", str(home / ".cache" / "torch"))
    monkeypatch.chdir(work)
    ran: set[str] = set()  # the subcommands README's examples exercised
    timings: list[tuple[float, str]] = []
    for line in bash_commands(README.read_text()):
        if not _is_gankit(line):
            continue
        words = shlex.split(line)
        if words[0] == "torchrun":
            argv = _resolve(words[words.index("gankit") + 1 :], work)
            cmd = [sys.executable, "-m", "torch.distributed.run", *words[1 : words.index("-m")], "-m", "gankit"]
            proc = subprocess.run(
                cmd + _train_argv(argv, work),
                cwd=work,
                env=dict(os.environ, OMP_NUM_THREADS="1"),
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert proc.returncode == 0, f"{line}\n{proc.stdout}\n{proc.stderr[-3000:]}"
            _check_promise(argv, work, set())
            ran.add(argv[0])
            continue
        argv = _resolve(words[1:] if words[0] == "gankit" else words[3:], work)
        if argv[0] == "train":
            argv = _train_argv(argv, work)
        before = set(work.glob("runs/*"))
        start = time.monotonic()
        code = main(argv)
        timings.append((time.monotonic() - start, line))
        out = capsys.readouterr()
        assert code == 0, f"README command failed: {line}\n{out.out[-2000:]}\n{out.err[-2000:]}"
        assert "Traceback" not in out.err
        _check_promise(argv, work, before)
        ran.add(argv[0])
    # every command a user trains, samples, translates, evaluates, ships or cleans up with has a worked example
    assert ran >= {"train", "sample", "translate", "colorize", "eval", "report", "export", "import", "cache"}
    if os.environ.get("GANKIT_README_TIMES"):  # where the minutes go: GANKIT_README_TIMES=1 pytest -s ...
        for secs, line in sorted(timings, reverse=True):
            sys.__stderr__.write(f"{secs:7.1f} s  {line}\n")


def test_readme_python_api_block_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ```python block of "## Python API", executed unchanged on tiny Fashion-MNIST-like data
    (200 images: 5 epochs of the preset's batch 50 are 20 steps)."""
    section = README.read_text().split("## Python API", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1
    write_idx_dataset(Path(os.environ["GANKIT_DATA"]) / "fashion-mnist", n_train=200, n_test=50)
    monkeypatch.chdir(tmp_path)
    names: dict = {}
    exec(compile(blocks[0], "README.md (Python API)", "exec"), names)
    G = names["G"]
    assert isinstance(G, torch.nn.Module) and not G.training
    assert names["result"].step == 20 and names["images"].shape == (16, 1, 28, 28)
    assert names["more"].shape == (8, 1, 28, 28) and names["more"].abs().max() <= 1
    assert (tmp_path / "runs" / "gan-py" / "checkpoints" / "G_last.pt").is_file()
