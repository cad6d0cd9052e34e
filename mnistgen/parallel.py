"""Data-parallel training on this machine: `mnistgen train` starts itself once per process.

Paddle's eager CPU step runs on one core, so a process per usable CPU is how training uses the
machine. The command that the user ran (explicit, from the CLI) is started N times as ranks 0..N-1 of
a gloo process group, with the environment Paddle's own launcher would give them
(`paddle.distributed.launch`): the ranks then take the launched path that `train` already has (each
trains on every N-th image, DataParallel averages the gradients, rank 0 alone evaluates, writes and
shows progress). This process imports no Paddle; it relays rank 0's output, and:
  - Ctrl-C (or SIGTERM) stops every rank and exits 130; the ranks run in their own session, so the
    terminal's SIGINT reaches only this process, which terminates them; every file is written
    atomically, so the last finished epoch is kept (continue with --resume);
  - a rank that fails stops the others, and its error is shown;
  - a rank whose parent vanished (SIGKILL) exits by itself (`watch_parent`).

The global batch stays the user's --batch-size: each process takes batch/N, so a step sees as many
images as one process would and the loss curve has the same length. N is capped so that every
process gets at least MIN_BATCH_PER_PROCESS images per step.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from importlib import metadata
from pathlib import Path
from typing import Optional

from mnistgen import checkpoint, untrusted
from mnistgen.config import RESUME_FIX
from mnistgen.errors import MnistgenError
from mnistgen.runtime import BACKEND_ENV, RANK_ENV, WORLD_ENV, terminate, usable_cpus

MIN_BATCH_PER_PROCESS = 16  # below this a process's step is too small to be worth its all-reduce
LAUNCHED_ENV = "MNISTGEN_LAUNCHED"  # set in the ranks mnistgen starts: --batch-size is the global batch
PARENT_ENV = "MNISTGEN_PARENT_PID"
GPU_LAUNCH = 'python -m paddle.distributed.launch --gpus 0,1 "$(which mnistgen)" train --distributed ...'
GRACE_SECONDS = 5  # how long rank 0 gets to fail by itself when another rank failed
STOP_SECONDS = 10  # how long ranks get to exit after SIGTERM before SIGKILL
POLL_SECONDS = 0.2
TAIL_LINES = 20


def default_processes(batch_size: int, cpus: int, images: Optional[int] = None) -> int:
    """Processes for a run: one per usable CPU, at most one per MIN_BATCH_PER_PROCESS images of the
    (global) batch, which is no larger than the training set when its size is known."""
    batch = min(batch_size, images) if images else batch_size
    return max(1, min(cpus, batch // MIN_BATCH_PER_PROCESS))


def saved_processes(run_dir) -> Optional[int]:
    """How many processes trained the run in `run_dir` (1 for runs from before --processes); None when
    there is no readable state (train then says so). A count that is not a whole number from 1 is
    refused: it is what `run` would start, port by port and process by process."""
    path = Path(run_dir) / (checkpoint.STATE_STEM + checkpoint.CARD_SUFFIX)
    untrusted.check_not_special(path, "--resume:", RESUME_FIX)  # a FIFO would block the read
    try:
        saved = untrusted.loads(path.read_text()).get("options", {}).get("extra", {}).get("processes", 1)
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    if not checkpoint.is_count(saved) or saved < 1:
        raise MnistgenError(
            f"cannot resume from {run_dir}: {path.name} is damaged (its process count is {saved!r}, not a whole "
            f"number from 1); {RESUME_FIX}"
        )
    return saved


def gpu_paddle() -> bool:
    """Whether the installed Paddle is a CUDA build (without importing it)."""
    try:
        metadata.version("paddlepaddle-gpu")
        return True
    except metadata.PackageNotFoundError:
        return False


def choose(
    processes: Optional[int],
    batch_size: int,
    device: str,
    out,
    resume: bool,
    indices: Optional[list] = None,
    limit: Optional[int] = None,
) -> int:
    """The process count for `train`: --processes, else the resumed run's own, else one per usable CPU
    (capped by default_processes); one on a GPU (use paddle.distributed.launch there). Refuses an --out
    that train would refuse, and --device gpu on several processes (they would train on CPUs), before
    any process starts."""
    checkpoint.check_run_dir(out, resume)
    saved = saved_processes(out) if resume else None
    asked = saved or processes or 1
    if device == "gpu" and asked > 1:
        alone = "resume it on CPUs with --device cpu" if saved else "train on one GPU with --processes 1"
        raise MnistgenError(
            f"--device gpu: mnistgen's {asked} processes would train on CPUs; for several GPUs use Paddle's launcher "
            f"({GPU_LAUNCH}), or {alone}"
        )
    if saved is not None:
        if processes and processes != saved:
            raise MnistgenError(
                f"--resume: {out} was trained on {saved} process(es) (the batch is split between them); "
                f"resume it with --processes {saved}"
            )
        if not processes and saved > usable_cpus():  # the state is a file: more than the CPUs only when asked
            raise MnistgenError(
                f"--resume: {out} was trained on {saved} processes, more than the {usable_cpus()} CPUs usable here; "
                f"resume it with --processes {saved} to start them all anyway"
            )
        return saved
    if processes:
        if processes > batch_size:
            raise MnistgenError(f"--processes {processes} exceeds --batch-size {batch_size}: each needs an image")
        return processes
    if device == "gpu" or (device == "auto" and gpu_paddle()):
        return 1
    images = len(indices) if indices is not None else limit
    return default_processes(batch_size, usable_cpus(), images)


def launched_by_mnistgen() -> bool:
    return os.environ.get(LAUNCHED_ENV) == "1"


def per_process_batch(batch_size: int, world: int) -> int:
    """Each rank's share of the global batch."""
    return max(1, batch_size // world)


def free_ports(count: int) -> list[int]:
    """`count` TCP ports on 127.0.0.1 that are free now (the kernel picks them)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def rank_environment(rank: int, world: int, endpoints: list[str]) -> dict:
    """What paddle.distributed.launch sets for a CPU (gloo) rank, and the mnistgen markers."""
    return {
        RANK_ENV: str(rank),
        WORLD_ENV: str(world),
        "PADDLE_CURRENT_ENDPOINT": endpoints[rank],
        "PADDLE_TRAINER_ENDPOINTS": ",".join(endpoints),
        "PADDLE_MASTER": endpoints[0],
        "PADDLE_GLOBAL_SIZE": str(world),
        "PADDLE_LOCAL_SIZE": str(world),
        "PADDLE_GLOBAL_RANK": str(rank),
        "PADDLE_LOCAL_RANK": str(rank),
        "PADDLE_RANK_IN_NODE": str(rank),
        "PADDLE_NNODES": "1",
        BACKEND_ENV: "gloo",
        "CUDA_VISIBLE_DEVICES": "",
        LAUNCHED_ENV: "1",
        PARENT_ENV: str(os.getpid()),
    }


def watch_parent() -> None:
    """In a rank mnistgen started: exit when the launching process is gone (killed with SIGKILL,
    say), instead of waiting forever in an all-reduce."""
    parent = os.environ.get(PARENT_ENV)
    if not parent or not parent.isdigit():
        return

    def watch():
        while os.getppid() == int(parent):
            time.sleep(1)
        os._exit(EXIT_ORPHANED)

    threading.Thread(target=watch, name="mnistgen-watch-parent", daemon=True).start()


EXIT_ORPHANED = 143


def _fd(stream) -> Optional[int]:
    """The OS file descriptor behind a Python stream, or None (captured output, as in tests)."""
    try:
        stream.flush()
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def _relay(pipe, stream, tail: Optional[deque] = None) -> threading.Thread:
    def copy():
        for line in iter(pipe.readline, b""):
            text = line.decode(errors="replace")
            if tail is not None:
                tail.append(text.rstrip("\n"))
            if stream is not None:
                stream.write(text)
                stream.flush()
        pipe.close()

    thread = threading.Thread(target=copy, daemon=True)
    thread.start()
    return thread


def _stop(procs: list) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + STOP_SECONDS
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(argv: list[str], world: int, data=None, download: bool = False, kind: str = "cvae") -> int:
    """Run `python -m mnistgen ARGV` (a `train` command) as `world` data-parallel ranks; returns rank
    0's exit code. --download happens here, once, before the ranks start. Raises KeyboardInterrupt
    when interrupted (after stopping every rank) and MnistgenError when a rank other than 0 failed."""
    if download:
        from mnistgen import sources

        sources.load(data, download=True, need_labels=kind != "vae")
        argv = [word for word in argv if word != "--download"]
    if "--processes" not in argv:
        argv = [*argv, "--processes", str(world)]  # recorded in the card's command
    endpoints = [f"127.0.0.1:{port}" for port in free_ports(world)]
    command = [sys.executable, "-m", "mnistgen", *argv]
    out_fd, err_fd = _fd(sys.stdout), _fd(sys.stderr)
    procs, threads, tails = [], [], []
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, terminate)
    try:
        for rank in range(world):
            env = {**os.environ, **rank_environment(rank, world, endpoints)}
            tail = deque(maxlen=TAIL_LINES)
            if rank == 0:
                stdout = out_fd if out_fd is not None else subprocess.PIPE
                stderr = err_fd if err_fd is not None else subprocess.PIPE
            else:
                stdout, stderr = subprocess.DEVNULL, subprocess.PIPE
            proc = subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr, start_new_session=True)
            procs.append(proc)
            tails.append(tail)
            if proc.stdout is not None:
                threads.append(_relay(proc.stdout, sys.stdout))
            if proc.stderr is not None:
                threads.append(_relay(proc.stderr, sys.stderr if rank == 0 else None, tail))
        while True:
            codes = [proc.poll() for proc in procs]
            failed = [rank for rank, code in enumerate(codes) if code not in (None, 0)]
            if failed or all(code == 0 for code in codes):
                break
            time.sleep(POLL_SECONDS)
        if failed and codes[0] is None:  # rank 0 usually meets the same error (bad data): let it say so itself
            try:
                codes[0] = procs[0].wait(timeout=GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                pass
    except BaseException:
        _stop(procs)
        raise
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)
    _stop(procs)
    for thread in threads:
        thread.join(timeout=5)
    if codes[0] not in (None, 0):
        return codes[0]  # rank 0 said why, on stderr
    if failed:
        last = next((line for line in reversed(tails[failed[0]]) if line.strip()), f"exit code {codes[failed[0]]}")
        raise MnistgenError(f"training process {failed[0]} of {world} failed: {last}")
    return 0
