"""Importing Paddle quietly and choosing the device it runs on.

A GPU is used only after it runs a test convolution (once per process): `--device auto` otherwise
falls back to the CPU with one `note:` line, `--device gpu` is refused in one line. Paddle's device
is the whole process's, so mnistgen sets it around its own work and gives the caller's back.

Everything that needs Paddle gets it through `import_paddle()`, so the CLI can parse and
validate arguments (and print `--help`) without paying Paddle's ~1.5 s import, and a
missing Paddle becomes one line that names the fix instead of a traceback. Paddle's import also
takes SIGTERM (what `timeout`, Slurm's time limit and `docker stop` send) for a C++ handler that
prints its stack to stdout and ends the process where it stands; the handler Python had is given
back: the CLI's `terminate` (a terminated command unwinds as Ctrl-C does and removes its partial
files), a host program's own, or the default. Ctrl-C and SIGTERM are held back while Paddle imports
(`_signals_held`), and by the CLI from its first line until a command's work starts (`hold_signals`),
so neither meets Paddle's handler: one that comes is delivered to Python's once Paddle is whole.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import multiprocessing
import os
import signal
import sys
import threading
import warnings
from enum import Enum
from typing import Optional

from mnistgen.errors import MnistgenError

THREADS_ENV = "MNISTGEN_THREADS"
MAX_ENV_DIGITS = 6  # a CPU count from the environment: more digits than any machine has is no count
# Paddle sets OMP_NUM_THREADS=1 when it is imported; remember what the user (or the scheduler) set.
_USER_OMP_THREADS = os.environ.get("OMP_NUM_THREADS")
INSTALL_HINT = 'install Paddle: pip install "mnistgen[cpu]" (or "mnistgen[gpu]" on a CUDA machine)'
MIN_PADDLE = (2, 6)
PADDLE_DATA_HOME = "~/.cache/paddle/dataset"  # what `import paddle` creates (paddle.dataset.common)
EXIT_TERMINATED = 128 + signal.SIGTERM  # the shell's code for a process ended by SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Python runs, as Ctrl-C is: `with` blocks remove their partial files."""

    exit_code = EXIT_TERMINATED


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    gpu = "gpu"


def _quiet_environment() -> None:
    # glog's I-lines (PIR passes, oneDNN notes) go straight to fd 2; they must be silenced
    # before the shared library loads.
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("GLOG_v", "0")
    os.environ.setdefault("FLAGS_call_stack_level", "0")


def import_paddle():
    """Import and return the `paddle` module without its start-up noise."""
    _quiet_environment()
    # Paddle 2.6's libpaddle.so exports its own zlib symbols; where the system zlib has not yet been
    # used when it loads (numpy 2 imports numpy.random lazily, and its first import inflates), the
    # system zlib binds to them and the process segfaults in inflateReset2 (seen with 2.6.2 under a
    # pyenv Python, in paddle.jit.save). Importing numpy.random first binds zlib to itself.
    import_numpy()
    try:
        with _signals_held(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "No ccache found" and similar UserWarnings
            import paddle
    except ImportError as exc:
        raise MnistgenError(f"PaddlePaddle is not installed ({exc}): {INSTALL_HINT}") from None
    except OSError as exc:
        # Paddle's import makes ~/.cache/paddle/dataset (it falls back to /tmp only when HOME itself is
        # unwritable): a ~/.cache that is a file, or another user's, would stop every command.
        cache = os.path.join(os.path.expanduser("~"), ".cache")
        failed = os.fsdecode(exc.filename) if exc.filename is not None else ""
        if failed != cache and not failed.startswith(cache + os.sep):
            raise
        raise MnistgenError(
            f"PaddlePaddle cannot be imported: its import creates {PADDLE_DATA_HOME} and fails on "
            f"{failed} ({exc.strerror}): make {cache} a folder you can write, or set HOME to one"
        ) from None
    version = tuple(int(p) for p in paddle.__version__.split(".")[:2] if p.isdigit())
    if version and version != (0, 0) and version < MIN_PADDLE:
        raise MnistgenError(
            f"PaddlePaddle {paddle.__version__} is too old: mnistgen needs 2.6 or newer (3.3.1+ recommended); "
            f"{INSTALL_HINT}"
        )
    return paddle


def terminate(signum, frame):
    """The CLI's SIGTERM handler (and train's launcher's): unwind as Ctrl-C does."""
    raise Terminated()


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C, and timeout/Slurm/docker stop


def _owns_signals() -> bool:
    """Whether this thread may hold and handle Ctrl-C and SIGTERM: the main thread (where Python runs
    signal handlers) of a process that is not a multiprocessing child (a DataLoader worker is stopped by
    its parent and keeps Paddle's handling), on a system with signal masks."""
    return (
        hasattr(signal, "pthread_sigmask")
        and threading.current_thread() is threading.main_thread()
        and multiprocessing.parent_process() is None
    )


@contextlib.contextmanager
def _blocked():
    """Ctrl-C and SIGTERM blocked in this thread for the block (one that comes is delivered after it)."""
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


_HELD_MASK: Optional[set] = None  # the signal mask before hold_signals, while it holds


def hold_signals() -> None:
    """The CLI's first act: Ctrl-C and SIGTERM blocked in the main thread until `release_signals` (a
    command's work starts, or the CLI ends). Every thread started meanwhile is born with them blocked,
    numpy's BLAS threads above all (one per further CPU, started as numpy loads): the kernel can then hand
    them only to the main thread, which `_signals_held` holds while Paddle imports. Handed to a BLAS
    thread then, SIGTERM met Paddle's C++ handler, or Python's handler raised inside the import."""
    global _HELD_MASK
    if _HELD_MASK is None and _owns_signals():
        _HELD_MASK = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def release_signals() -> None:
    """The mask as before hold_signals: a Ctrl-C or SIGTERM that came meanwhile is delivered now."""
    global _HELD_MASK
    if _HELD_MASK is not None:
        mask, _HELD_MASK = _HELD_MASK, None
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def import_numpy() -> None:
    """Import numpy (and numpy.random, see import_paddle) with Ctrl-C and SIGTERM blocked, so its BLAS
    threads never take them (see hold_signals): for a program that uses mnistgen before numpy."""
    with _blocked() if "numpy" not in sys.modules and _owns_signals() else contextlib.nullcontext():
        import numpy.random  # noqa: F401


@contextlib.contextmanager
def _signals_held():
    """Paddle's first import with Ctrl-C and SIGTERM blocked, then their handlers as Python had them
    and the signals unblocked: one that came meanwhile is delivered then, to that handler (the CLI's
    Terminated or KeyboardInterrupt, raised here once Paddle is whole). Delivered during the import,
    SIGTERM met Paddle's C++ handler (its stack on stdout, the process ended where it stood), and an
    exception raised inside the import was swallowed by a bare `except` or made "PaddlePaddle is not
    installed (initialization failed)". Only the main thread's mask is set here: a thread started
    earlier takes the signals unless it was born holding them (hold_signals, import_numpy). A handler
    set outside Python (None) is not ours to replace."""
    if "paddle" in sys.modules or not _owns_signals():
        yield
        return
    before = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    with _blocked():
        try:
            yield
        finally:
            for signum, handler in before.items():
                if handler is not None:
                    signal.signal(signum, handler)


def _cgroup_cpus() -> Optional[float]:
    """CPUs allowed by a cgroup v2 quota (containers, Kubernetes, Slurm with cgroups), if any."""
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else max(1.0, int(quota) / int(period))


def _env_int(name: str) -> Optional[int]:
    value = (_USER_OMP_THREADS if name == "OMP_NUM_THREADS" else os.environ.get(name)) or ""
    value = value.strip()
    if not (value.isascii() and value.isdigit() and len(value) <= MAX_ENV_DIGITS):
        return None
    return int(value) or None


def usable_cpus() -> int:
    """CPUs this process may really use: the smallest of its affinity mask, a cgroup CPU quota,
    SLURM_CPUS_PER_TASK and OMP_NUM_THREADS (whichever exist), at least 1. `--threads` overrides
    it by setting MNISTGEN_THREADS."""
    override = _env_int(THREADS_ENV)
    if override:
        return override
    limits = [len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)]
    quota = _cgroup_cpus()
    if quota is not None:
        limits.append(int(quota))
    limits += [v for v in (_env_int("SLURM_CPUS_PER_TASK"), _env_int("OMP_NUM_THREADS")) if v]
    return max(1, min(limits))


CPU_BUILD = "this Paddle is a CPU build"
NO_GPU = "no CUDA GPU is visible"
GPU_FIX = "check the CUDA/cuDNN install with `mnistgen doctor`, or use --device cpu"
DETERMINISTIC_FLAG = "FLAGS_cudnn_deterministic"  # cuDNN's deterministic algorithms: same seed, same pixels
EXHAUSTIVE_FLAG = "FLAGS_cudnn_exhaustive_search"  # cuDNN's timed algorithm search
# What a GPU runs with: deterministic cuDNN algorithms, and so no exhaustive search: Paddle's cuDNN
# convolutions (2.6 and 3.x) refuse the two together with an InvalidArgument at every conv, and a
# FLAGS_cudnn_exhaustive_search=1 in the environment would pass the test convolution, run before them.
GPU_FLAGS = {DETERMINISTIC_FLAG: True, EXHAUSTIVE_FLAG: False}
_GPU_TESTED: dict = {}  # GPU index -> gpu_problem's answer, once per process
_NOTED: set = set()  # the GPU problems already told on stderr in this process
if hasattr(os, "register_at_fork"):  # a forked child has its own CUDA context to probe (POSIX)
    os.register_at_fork(after_in_child=lambda: (_GPU_TESTED.clear(), _NOTED.clear()))


def failure_reason(exc: BaseException) -> str:
    """One short line from an exception Paddle raised (its messages run to dozens of lines)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip() and not line.strip().startswith("-")]
    text = lines[0] if lines else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def gpu_index(paddle) -> int:
    """The GPU this process uses: paddle.distributed.launch gives each rank its own (FLAGS_selected_gpus,
    counted among the visible GPUs, as ParallelEnv's device_id reads it), else the first."""
    return paddle.distributed.ParallelEnv().device_id if launched_world()[1] > 1 else 0


def probe_gpu(paddle, index: int) -> Optional[str]:
    """CPU_BUILD, NO_GPU, or None once gpu:index has run a 1-channel convolution and read it back: where
    a missing or mismatched cuDNN, a driver too old for the build or an unsupported GPU first fails
    (Paddle raises a RuntimeError at the first conv, and that is raised here)."""
    if not paddle.is_compiled_with_cuda():
        return CPU_BUILD
    if paddle.device.cuda.device_count() <= index:
        return NO_GPU
    with device_kept():  # after a failure too: the caller's device again (select_device then sets the CPU)
        paddle.set_device(f"gpu:{index}")
        paddle.nn.functional.conv2d(paddle.ones([1, 1, 4, 4]), paddle.ones([1, 1, 3, 3])).numpy()
    return None


def gpu_problem(paddle) -> Optional[str]:
    """None when this process's GPU passes probe_gpu; else why it cannot be used, in one line:
    CPU_BUILD, NO_GPU, or what failed. Probed once per process."""
    index = gpu_index(paddle) if paddle.is_compiled_with_cuda() else 0
    if index not in _GPU_TESTED:
        try:
            _GPU_TESTED[index] = probe_gpu(paddle, index)
        except Exception as exc:  # Paddle's RuntimeError/OSError from CUDA, cuDNN or the driver
            _GPU_TESTED[index] = failure_reason(exc)
    return _GPU_TESTED[index]


def check_device(device: Device | str = Device.auto) -> Device:
    """The device asked for, refused in one line when it cannot be had (a GPU on a CPU build, none
    visible, or one that fails its test convolution); nothing is set."""
    try:
        device = Device(device)
    except ValueError:
        raise MnistgenError(f"device {device!r}: use one of {', '.join(d.value for d in Device)}") from None
    paddle = import_paddle()
    problem = gpu_problem(paddle) if device is Device.gpu else None
    if problem == CPU_BUILD:
        raise MnistgenError(
            f'--device gpu: {CPU_BUILD}; install the CUDA build (pip install "mnistgen[gpu]") or use --device cpu'
        )
    if problem == NO_GPU:
        raise MnistgenError(f"--device gpu: {NO_GPU}; check nvidia-smi / CUDA_VISIBLE_DEVICES or use --device cpu")
    if problem:
        raise MnistgenError(f"--device gpu: the GPU cannot be used ({problem}); {GPU_FIX}")
    return device


def resolve_device(device: Device | str = Device.auto) -> str:
    """The name ("cpu" or "gpu:N") of the device `device` means, Paddle's own left as it is. `auto`
    takes the GPU when it passes its test, else the CPU, with one `note:` line on stderr when a GPU
    is there but fails."""
    device = check_device(device)
    paddle = import_paddle()
    problem = None if device is Device.cpu else gpu_problem(paddle)
    if problem not in (None, CPU_BUILD, NO_GPU) and problem not in _NOTED:  # a GPU is there, but fails
        _NOTED.add(problem)
        sys.stderr.write(f"note: the GPU cannot be used ({problem}); running on the CPU ({GPU_FIX})\n")
    return f"gpu:{gpu_index(paddle)}" if device is not Device.cpu and problem is None else "cpu"


def select_device(device: Device | str = Device.auto) -> str:
    """Set Paddle's device to the one `device` means (resolve_device) and return its name."""
    name = resolve_device(device)
    _use(import_paddle(), name)
    return name


def device_flags(name: str) -> dict:
    """The Paddle flags mnistgen sets to run on device `name`: GPU_FLAGS on a GPU, none on the CPU."""
    return dict(GPU_FLAGS) if name.startswith("gpu") else {}


def _use(paddle, name: str) -> None:
    paddle.set_device(name)
    flags = device_flags(name)
    if flags:  # a CUDA build (a CPU build refuses the flags)
        paddle.set_flags(flags)


def _gpu_flags(paddle) -> Optional[dict]:
    """GPU_FLAGS' current values; None where Paddle has no cuDNN (a CPU build refuses them: ValueError)."""
    try:
        return {name: bool(value) for name, value in paddle.get_flags(list(GPU_FLAGS)).items()}
    except ValueError:
        return None


@contextlib.contextmanager
def device_kept():
    """Paddle's device (and its cuDNN flags, GPU_FLAGS) back as the caller had them after the block:
    they are the whole process's, and a host program's own tensors must stay on its device."""
    paddle = import_paddle()
    before, flags = paddle.get_device(), _gpu_flags(paddle)
    try:
        yield
    finally:
        if paddle.get_device() != before:
            paddle.set_device(before)
        if flags is not None and _gpu_flags(paddle) != flags:
            paddle.set_flags(flags)


@contextlib.contextmanager
def on_device(name: str):
    """Run the block on device `name` (from select_device), cuDNN deterministic on a GPU, then give
    the caller's device and flag back. (Paddle's device is the process's: a switch in one thread is
    seen by Paddle calls in another while the block runs; the same device is no switch.)"""
    with device_kept():
        _use(import_paddle(), name)
        yield


def keeps_device(function):
    """`function` with the caller's Paddle device given back after it (see device_kept)."""

    @functools.wraps(function)
    def run(*args, **kwargs):
        with device_kept():
            return function(*args, **kwargs)

    return run


def place_of(layer):
    """Where a layer's parameters are: the place for its inputs, whatever the process's device is now."""
    return layer.parameters()[0].place


# -- data-parallel training (paddle.distributed.launch sets these for every process it starts) --

WORLD_ENV, RANK_ENV = "PADDLE_TRAINERS_NUM", "PADDLE_TRAINER_ID"
BACKEND_ENV = "PADDLE_DISTRI_BACKEND"  # init_parallel_env's backend; unset, NCCL on any CUDA build


def launched_world() -> tuple[int, int]:
    """(rank, world size) from paddle.distributed.launch's environment; (0, 1) when not launched."""
    world = _env_int(WORLD_ENV) or 1
    rank = int(os.environ.get(RANK_ENV, "0") or 0)
    return rank, world


def distributed_backend(device_name: str, cuda_build: bool) -> Optional[str]:
    """The backend a launched rank on `device_name` must ask init_parallel_env for, or None to leave
    Paddle's choice: unless PADDLE_DISTRI_BACKEND says gloo, it takes NCCL on every CUDA build, and
    NCCL cannot reduce CPU tensors (a CUDA build's --device cpu, or auto after its GPU failed the
    test). A CPU build, or a GPU rank, gets the right one from Paddle."""
    return "gloo" if cuda_build and not device_name.startswith("gpu") else None


def init_distributed(device_name: str) -> tuple[int, int]:
    """Join the process group of ranks on `device_name` (select_device's: NCCL on GPUs, gloo on CPUs);
    returns (rank, world size)."""
    rank, world = launched_world()
    if world > 1:
        paddle = import_paddle()
        backend = distributed_backend(device_name, paddle.is_compiled_with_cuda())
        if backend:
            os.environ[BACKEND_ENV] = backend
        with contextlib.redirect_stderr(io.StringIO()):  # a "Modified FLAGS detected" table of Paddle's own settings
            paddle.distributed.init_parallel_env()
    return rank, world


# -- memory --------------------------------------------------------------------------------------

MEMORY_ENV = "MNISTGEN_MAX_MEMORY"  # bytes an output may hold in memory: 8G, 512M, 2000000
MEMORY_SHARE = 0.5  # of physical memory (or the cgroup limit), when MNISTGEN_MAX_MEMORY is unset
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def _cgroup_memory() -> Optional[int]:
    try:
        text = open("/sys/fs/cgroup/memory.max").read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def memory_budget() -> tuple[int, str]:
    """(bytes, where the number comes from): what one output may hold in memory at once. The
    MNISTGEN_MAX_MEMORY override (8G, 512M, or bytes), else half of physical memory or of the
    cgroup's limit, whichever is smaller."""
    text = os.environ.get(MEMORY_ENV, "").strip().upper().removesuffix("IB").removesuffix("B")
    if text:
        unit = text[-1] if text[-1] in _UNITS else ""
        try:
            value = float(text[: len(text) - len(unit)]) * _UNITS[unit]
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value >= 1):  # nan, inf, 1e999, 0 or a negative size
            raise MnistgenError(
                f"{MEMORY_ENV}={os.environ[MEMORY_ENV]!r} is not a size: use a positive size such as 8G, 512M "
                "or a number of bytes"
            )
        return int(value), f"{MEMORY_ENV}"
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows): no bound but the override's
        physical = 2**62
    limits = [physical] + [v for v in (_cgroup_memory(),) if v]
    return int(min(limits) * MEMORY_SHARE), f"half of this machine's memory; set {MEMORY_ENV} to change it"


def human_bytes_apart(need: float, budget: float) -> tuple[str, str]:
    """Two sizes as `human_bytes`, or in bytes when they would read alike ("1.5 GiB, more than the 1.5 GiB")."""
    shown = human_bytes(need), human_bytes(budget)
    return shown if shown[0] != shown[1] else (f"{need:,.0f} bytes", f"{budget:,.0f} bytes")


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
