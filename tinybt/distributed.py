"""Data-parallel training over MPI: P processes, one model, each process 1/P of every batch.

`mpiexec -n P python -m tinybt.train ...` starts P copies of the program. Every copy holds the
same weights, takes its own share of each batch (`batch_share`) and runs the step on it; the
step stays the single-process step's mathematics because a few quantities are made global,
that is, computed over the whole batch, rows of every process:

- the batch statistics: batch norm's mean and variance in the forward and the two batch means
  in its backward; the losses' standardisation and C = Ẑ^Aᵀ Ẑ^B / N; VICReg's variances and
  covariances; the losses' means. Each is a sum over the batch, so each process sums its
  rows and `sum_over_processes` adds the P partial sums (an all-reduce);
- SimCLR's negatives: every view is compared with every view of the batch, so every process
  sees all the embeddings (`gather_batch`, an all-gather);
- the gradients, once per step, as one flat buffer (`sum_gradients`): each process's
  backward gives its rows' share of dL/dθ, and the shares add up to the whole batch's.

Everything else (the convolutions, ReLU, the optimiser's update, BYOL's moving average) is
per row or per weight, so it needs nothing: each process computes the same update from the
same summed gradient.

The batch's sums are taken only inside `whole_batch()`, which the training step enters on
every process at once. Outside it every sum over the batch is local, so process 0 can
evaluate, plot or standardise alone without waiting for processes that never come. In one
process (no launcher, or `mpiexec -n 1`) every function is a no-op and mpi4py is never
imported.

Around the step, a run of P processes needs three more things, which every process calls at
the same point of the same code: what process 0 decides (the options, the folder, the
checkpoint to resume) reaches all (`on_process_zero`, `broadcast`); a decision to stop at
some step is taken by all at once (`any_process`); and a failure is reported once, or, when
one process fails alone, by that process, which then stops the others (`stop`).

This is the only module that imports mpi4py. Arrays cross MPI on the host: a CuPy array is
copied to the host, reduced, and copied back (the MPICH of `pip install mpich` is not
CUDA-aware, so there is no device-to-device path to take).
"""

import os
import sys
import time
from contextlib import contextmanager, redirect_stderr, redirect_stdout

import numpy as np

from tinybt import backend
from tinybt.errors import TinyBTError

# What each MPI's launcher tells the processes it starts: MPICH's and Intel MPI's hydra,
# Open MPI, MVAPICH. One of them set to more than 1 means "you are one of several".
LAUNCHER_SIZES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
LAUNCHER_RANKS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")

# How long a failing process waits to learn whether every process failed with it (the same
# error, reached by the same code on the same data) before it stops the others alone.
STOP_WAIT_SECONDS = 3.0


class DistributedError(TinyBTError):
    """The processes cannot work together as launched."""


_world = None  # mpi4py's COMM_WORLD, loaded on first use when the launcher started several
_stopping = None  # a copy of it for `stop` alone, so its barrier meets no other collective
# Inside whole_batch(), the batch is split across the processes and this says whose statistics
# the ops take: GLOBAL (the whole batch's) or PER_PROCESS; None outside it.
GLOBAL, PER_PROCESS = "global", "per-process"
_sharing = None


def launched_size():
    """How many processes the launcher says it started (1 when no launcher started this one)."""
    for name in LAUNCHER_SIZES:
        if name in os.environ:
            return int(os.environ[name])
    return 1


def refuse_launcher(program, reason):
    """Stop, in one line (status 2), a program that works as one process when a launcher
    started several copies of it: they would each do the whole work side by side, or, through
    the training step, sum gradients across different jobs. `reason` says what would go wrong."""
    if launched_size() > 1:
        sys.stderr.write(
            f"error: python -m {program} runs as one process: start it without mpiexec ({reason})\n"
        )
        raise SystemExit(2)


def launched_rank():
    """This process's number as the launcher gave it (0 when no launcher started this one)."""
    for name in LAUNCHER_RANKS:
        if name in os.environ:
            return int(os.environ[name])
    return 0


@contextmanager
def only_first_process_prints():
    """Silence stdout and stderr of every launched process but process 0, for what all of
    them do alike before they join (reading the command line: a mistake in it, or --help,
    is printed once, not P times). Needs no MPI: the launcher's numbering says who is 0."""
    if launched_rank() == 0:
        yield
        return
    with open(os.devnull, "w") as nowhere, redirect_stdout(nowhere), redirect_stderr(nowhere):
        yield


def _communicator():
    """COMM_WORLD, importing mpi4py the first time; None in one process."""
    global _world, _stopping
    if _world is None and launched_size() > 1:
        try:
            from mpi4py import MPI
        except ImportError:
            raise DistributedError(
                f"started by mpiexec as one of {launched_size()} processes, but mpi4py is not "
                'installed: pip install -e ".[mpi]"'
            ) from None
        if MPI.COMM_WORLD.Get_size() != launched_size():
            raise DistributedError(
                f"the launcher started {launched_size()} processes but MPI sees "
                f"{MPI.COMM_WORLD.Get_size()}: launch with the mpiexec of the MPI that mpi4py "
                'uses (the one pip install -e ".[mpi]" puts beside python)'
            )
        _world, _stopping = MPI.COMM_WORLD, MPI.COMM_WORLD.Dup()
    return _world


def size():
    """P, the number of processes training together (1 without a launcher)."""
    world = _communicator()
    return 1 if world is None else world.Get_size()


def rank():
    """This process's number, 0 to P - 1; process 0 is the one that writes files."""
    world = _communicator()
    return 0 if world is None else world.Get_rank()


def is_active():
    """True when several processes train together (launched by mpiexec with P > 1)."""
    return size() > 1


def local_rank_and_size():
    """(this process's number among those on its machine, how many run there).

    The processes of one machine share its GPUs: `gpu_index` gives each its own. MPI finds
    them as the processes that can share memory (COMM_TYPE_SHARED).
    """
    world = _communicator()
    if world is None:
        return 0, 1
    from mpi4py import MPI

    machine = world.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        return machine.Get_rank(), machine.Get_size()
    finally:
        machine.Free()


def gpu_index(gpu_count):
    """The GPU this process uses: its number among the processes of its machine, one GPU each.

    gpu_count: how many GPUs the machine shows. Two processes on one GPU would each hold a
    model and fight over it, so more processes than GPUs on a machine is refused.
    """
    local_rank, local_size = local_rank_and_size()
    if local_size > gpu_count:
        raise DistributedError(
            f"--backend cupy with {local_size} processes on a machine with {gpu_count} GPU(s): "
            f"start at most {gpu_count} per machine (mpiexec -n {gpu_count}, or -ppn "
            f"{gpu_count} across machines), or use --backend numpy"
        )
    return local_rank


def batch_share(batch_size, resuming=False):
    """slice: the rows of every batch of `batch_size` (the whole batch) this process takes.

    Equal shares, in rank order: process r takes rows r N/P to (r + 1) N/P. Every process
    then holds the same number of rows, which the gathers and the counts below rely on.
    A batch that does not split is refused with what to change: the batch size of a new
    run, the number of processes of a resumed one (its batch size is part of the run).
    """
    processes = size()
    if batch_size % processes and resuming:
        divisors = [str(n) for n in range(1, 17) if batch_size % n == 0]
        raise DistributedError(
            f"this run's batch of {batch_size} does not split into {processes} equal shares: "
            f"resume it as a number of processes that divides {batch_size} "
            f"(mpiexec -n {', '.join(divisors[:-1])} or {divisors[-1]})"
        )
    if batch_size % processes:
        raise DistributedError(
            f"--batch-size {batch_size} does not split into {processes} equal shares: use a "
            f"multiple of {processes} (--batch-size is the whole batch, over all processes)"
        )
    share = batch_size // processes
    return slice(rank() * share, (rank() + 1) * share)


@contextmanager
def whole_batch(statistics=GLOBAL):
    """Inside this block the batch is split across the processes. Every process must enter
    it at the same step: the sums inside wait for all of them. In one process it changes
    nothing.

    statistics: GLOBAL, the batch's statistics are the whole batch's (the method);
    PER_PROCESS, each process standardises and correlates its own share alone and only the
    gradients are combined, as their mean, which is what a data-parallel run without
    synchronised statistics trains (PyTorch's DistributedDataParallel without SyncBatchNorm
    and without the all-reduce of C): another method, kept to show the difference.
    """
    global _sharing
    if statistics not in (GLOBAL, PER_PROCESS):
        raise ValueError(f"statistics must be {GLOBAL!r} or {PER_PROCESS!r}, got {statistics!r}")
    previous, _sharing = _sharing, statistics
    try:
        yield
    finally:
        _sharing = previous


def sharing():
    """True inside `whole_batch()` with several processes sharing the batch's statistics."""
    return _sharing == GLOBAL and is_active()


def batch_count(count):
    """How many rows (or values) the whole batch has when this process holds `count`.

    Global: the shares are equal (see `batch_share`), so the whole batch has P times this
    process's; a mean over the batch divides by this.
    """
    return count * size() if sharing() else count


def sum_over_processes(array):
    """The sum of `array` over the processes, the same on every one: an all-reduce.

    Global: a sum over the batch is the sum of each process's sum over its rows, so batch
    statistics, C and the losses' means pass their batch sums through here. Outside
    `whole_batch()`, or in one process, it returns `array` itself, untouched.
    """
    if not sharing():
        return array
    return _all_reduce(array)


def _all_reduce(array):
    """The sum of `array` over the processes, on every one (MPI's all-reduce, on the host)."""
    from mpi4py import MPI

    total = np.array(backend.to_host(array))  # a copy of our own, summed into in place
    _communicator().Allreduce(MPI.IN_PLACE, total, op=MPI.SUM)
    return _like(array, total)


def batch_mean(array, axis=None):
    """array.mean(axis) with the mean taken over the whole batch, whose rows are axis 0.

    array: (n, ...), this process's rows. axis=None: the mean of every entry (a loss's mean
    over the batch); axis=0: the mean of each column over the batch, shape array.shape[1:].
    Global: the batch sums are added up across the processes and divided by the whole
    batch's count. In one process it is exactly array.mean(axis).
    """
    if not sharing():
        return array.mean(axis=axis)
    count = array.size if axis is None else array.shape[0]
    return sum_over_processes(array.sum(axis=axis)) / batch_count(count)


def gather_batch(array):
    """Every process's rows stacked in rank order: (n, ...) -> (P n, ...), on every process.

    An all-gather. Global: SimCLR compares each view with every view of the whole batch,
    so each process needs all of them. Outside `whole_batch()`, or in one process, it
    returns `array` itself.
    """
    if not sharing():
        return array
    host = np.ascontiguousarray(backend.to_host(array))
    stacked = np.empty((size() * len(host), *host.shape[1:]), dtype=host.dtype)
    _communicator().Allgather(host, stacked)
    return _like(array, stacked)


def gathered_rows(count):
    """slice: where this process's `count` rows sit in what `gather_batch` returns (all of it
    outside `whole_batch()` or in one process)."""
    start = rank() * count if sharing() else 0
    return slice(start, start + count)


def sum_gradients(parameters):
    """Replace each parameter's gradient by its sum over the processes, in one all-reduce.

    Global: each process's backward gives dL/dθ from its own rows, and the whole batch's
    gradient is the sum of those shares. All the gradients travel as one flat buffer: one
    message of the network's size instead of one per tensor, each of which would pay MPI's
    latency. Parameters without a gradient are skipped (the same ones on every process,
    which all run the same network). Outside `whole_batch()`, or in one process, nothing
    changes. With per-process statistics each process's gradient is that of its own loss,
    and they are averaged instead (see `whole_batch`).
    """
    if _sharing is None or not is_active():
        return
    parameters = [p for p in parameters if p.grad is not None]
    if not parameters:
        return
    xp = backend.get_array_module(parameters[0].grad)
    flat = _all_reduce(xp.concatenate([p.grad.reshape(-1) for p in parameters]))
    if _sharing == PER_PROCESS:
        flat /= size()
    start = 0
    for p in parameters:
        p.grad = flat[start : start + p.grad.size].reshape(p.grad.shape)
        start += p.grad.size


def broadcast(value):
    """Process 0's `value` (any picklable object, arrays included) on every process.

    Global: what one process decided or read (a run's configuration, the state to resume
    from) must be the same everywhere. In one process it returns `value`.
    """
    world = _communicator()
    return value if world is None else world.bcast(value, root=0)


def same_on_every_process(value, what):
    """Raise a TinyBTError on every process when `value` differs between them.

    For what each process reads for itself but all must share, such as the command line: a
    job whose processes were given different options (--resume on one alone) would train
    different runs, or wait for ever in a sum that only some of them reach. In one process
    it does nothing.
    """
    if any_process(broadcast(value) != value):
        raise TinyBTError(
            f"the {size()} processes of this job were given different {what}: start every "
            "process with the same command line"
        )


def on_process_zero(function, *args):
    """function(*args) run by process 0 alone, its result given to every process.

    For what must be decided once (reading the options of the run to resume, claiming the
    run's folder, loading its checkpoint): every process then holds the same answer, and a
    TinyBTError raised on process 0 is raised on every process, so they stop together.
    In one process it is function(*args).
    """
    if not is_active():
        return function(*args)
    outcome = None
    if rank() == 0:
        try:
            outcome = ("result", function(*args))
        except TinyBTError as error:
            outcome = ("error", str(error))
    kind, value = broadcast(outcome)
    if kind == "error":
        raise TinyBTError(value)
    return value


def any_process(flag):
    """Whether `flag` is True on any process, the same answer on every one (an all-reduce).

    For a decision every process must take at the same step: Ctrl-C reaches each process
    at its own moment, and a process that stopped alone would leave the others waiting in
    the next step's sums. In one process it is bool(flag).
    """
    if not is_active():
        return bool(flag)
    from mpi4py import MPI

    return bool(_communicator().allreduce(bool(flag), op=MPI.LOR))


def stop(message, status):
    """Report a failure once for the whole run; return the status to exit with.

    When every process fails together (the same bad option, the same diverged step: each
    runs the same code on the same data), process 0 prints `message` and the others keep
    quiet. When this process fails alone, the others are waiting for it in the next sum and
    would wait for ever: it prints `message`, naming itself, and ends at once, without MPI's
    farewell, which tells the launcher to stop the rest. Launched as several processes that
    cannot reach each other (no mpi4py), each knows only its launcher's number, and the first
    prints. In one process it prints `message`.
    """
    if _stopping is None:
        if launched_rank() == 0:
            print(message, file=sys.stderr)
        return status
    if _stopped_together():
        if rank() == 0:
            print(message, file=sys.stderr)
        return status
    print(f"process {rank()} of {size()}: {message}", file=sys.stderr)
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(status)


def _stopped_together(seconds=STOP_WAIT_SECONDS):
    """Whether every process reaches this point within `seconds`: a barrier that gives up."""
    request = _stopping.Ibarrier()
    deadline = time.monotonic() + seconds
    while not request.Test():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _like(array, host):
    """The host array `host` on `array`'s backend (back to the GPU for a CuPy array)."""
    if isinstance(array, np.ndarray):
        return host
    return backend.get_array_module(array).asarray(host)
