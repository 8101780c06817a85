"""Data-parallel training over MPI (tinybt/distributed.py).

In one process every function is a no-op, and the errors are one line; these run anywhere.
Across processes, `mpiexec -n 2` runs tests/mpi_checks.py: each op made global, on each
process's half of the batch, against the whole batch in one process and against central
differences. Those tests skip where mpi4py or its mpiexec is absent
(`pip install -e ".[mpi]"` brings both).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinybt import distributed
from tinybt.nn import Parameter

ROOT = Path(__file__).resolve().parents[1]
CHECKS = ("batchnorm2d", "batchnorm1d", "barlow_twins", "barlow_twins_centred", "vicreg")
CHECKS += ("simclr", "byol")


def find_mpiexec():
    """The mpiexec beside this Python (the [mpi] extra's MPICH), else the one on PATH."""
    beside = Path(sys.executable).with_name("mpiexec")
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def has_mpi4py():
    """Whether mpi4py can be imported (the package only: importing mpi4py.MPI starts MPI)."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


MPIEXEC = find_mpiexec()
needs_mpi = pytest.mark.skipif(
    not has_mpi4py() or MPIEXEC is None, reason='needs mpi4py and mpiexec: pip install -e ".[mpi]"'
)


def without_launcher():
    """os.environ without what an MPI launcher sets, so a child starts as one process."""
    return {k: v for k, v in os.environ.items() if k not in distributed.LAUNCHER_SIZES}


def launched_env():
    """The environment `mpiexec` starts its processes in: without a launcher's variables, and
    one BLAS thread each, as the README launches P processes on P cores (with more threads
    than cores, BLAS threads spin waiting for each other)."""
    threads = dict.fromkeys(("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"), "1")
    return {**without_launcher(), **threads}


def mpiexec(processes, *args, timeout=120):
    """Run `python -m tests.mpi_checks ARGS` in `processes` processes; the finished process."""
    command = [MPIEXEC, "-n", str(processes), sys.executable, "-m", "tests.mpi_checks", *args]
    return subprocess.run(
        command, cwd=ROOT, env=launched_env(), capture_output=True, text=True, timeout=timeout
    )


# ----- one process: every function a no-op -----
@pytest.mark.parametrize("statistics", [distributed.GLOBAL, distributed.PER_PROCESS])
def test_one_process_is_process_0_of_1_and_changes_nothing(statistics):
    array = np.arange(6.0).reshape(3, 2)
    assert (distributed.size(), distributed.rank(), distributed.is_active()) == (1, 0, False)
    assert distributed.batch_share(10) == slice(0, 10)
    with distributed.whole_batch(statistics):
        assert not distributed.sharing()
        assert distributed.sum_over_processes(array) is array
        assert distributed.gather_batch(array) is array
        assert distributed.batch_count(3) == 3
        assert distributed.gathered_rows(3) == slice(0, 3)
        assert distributed.batch_mean(array, axis=0).tolist() == array.mean(axis=0).tolist()
        parameter = Parameter(np.ones(2, np.float32))
        parameter.grad = grad = np.ones(2, np.float32)
        distributed.sum_gradients([parameter])
        assert parameter.grad is grad
    assert distributed.broadcast({"seed": 1}) == {"seed": 1}
    assert distributed.on_process_zero(sorted, [2, 1]) == [1, 2]
    assert distributed.any_process(True) and not distributed.any_process(False)


def test_one_process_never_imports_mpi4py():
    code = "import sys; from tinybt import distributed, methods; distributed.size(); "
    code += "print('mpi4py' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], env=without_launcher(), capture_output=True, text=True
    )
    assert result.stdout.strip() == "False", result.stderr


def test_a_batch_that_does_not_split_evenly_is_refused_in_one_line(monkeypatch):
    monkeypatch.setattr(distributed, "size", lambda: 4)
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    assert distributed.batch_share(128) == slice(32, 64)
    with pytest.raises(distributed.DistributedError, match="--batch-size 130 does not split"):
        distributed.batch_share(130)


def test_more_processes_than_gpus_on_a_machine_is_refused_in_one_line(monkeypatch):
    monkeypatch.setattr(distributed, "local_rank_and_size", lambda: (1, 2))
    assert distributed.gpu_index(2) == 1
    with pytest.raises(distributed.DistributedError, match="at most 1 per machine") as error:
        distributed.gpu_index(1)
    assert "\n" not in str(error.value)


def test_launched_by_mpiexec_without_mpi4py_says_what_to_install():
    """A launcher's variables tell a process it is one of several; without mpi4py it cannot
    join them, and says so in one line instead of training alone."""
    code = (
        "import sys; sys.modules['mpi4py'] = None\n"  # as if it were not installed
        "from tinybt import distributed\n"
        "try:\n    distributed.size()\n"
        "except distributed.DistributedError as error:\n    print(error)"
    )
    env = {**without_launcher(), "PMI_SIZE": "2", "PMI_RANK": "0"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.stdout.strip().splitlines() == [
        "started by mpiexec as one of 2 processes, but mpi4py is not installed: "
        'pip install -e ".[mpi]"'
    ], result.stderr


@needs_mpi
def test_another_mpis_launcher_is_refused_in_one_line():
    """Open MPI's mpiexec starting a Python whose mpi4py uses MPICH: each process would train
    alone, believing itself the only one. The launcher's variables give it away."""
    code = (
        "from tinybt import distributed\n"
        "try:\n    distributed.size()\n"
        "except distributed.DistributedError as error:\n    print(error)"
    )
    env = {**without_launcher(), "OMPI_COMM_WORLD_SIZE": "2"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.startswith("the launcher started 2 processes but MPI sees 1: launch"), (
        result.stdout + result.stderr
    )


# ----- several processes -----
@needs_mpi
@pytest.mark.parametrize("processes", [2, 4])
def test_processes_compute_each_op_as_one_process_on_the_whole_batch(processes):
    """Every op made global, on a share of the batch in each of 2 (and 4: code right only for
    two processes fails there) processes: output, input and parameter gradients and running
    statistics equal one process's on the whole batch to 1e-12 (float64, sums in another
    order), and the gradients equal central differences of the distributed op to 1e-7; C and
    VICReg's logged terms equal the whole batch's. Four one-thread processes share two cores
    here in about 30 s."""
    result = mpiexec(processes)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[: len(CHECKS)]] == list(CHECKS)
    assert lines[-1].startswith("logged statistics")


@needs_mpi
def test_per_process_statistics_are_another_method():
    """The same checks with each process on its own half alone, nothing made global: every
    op then differs from the whole batch's, so the test above can fail."""
    result = mpiexec(2, "--per-process", *CHECKS)
    assert result.returncode == 1, result.stdout + result.stderr
    assert [line.split()[:2] for line in result.stdout.splitlines()] == [
        ["FAILED", name] for name in CHECKS
    ]


@needs_mpi
def test_outside_whole_batch_each_process_computes_alone():
    """Process 0 alone (as when it evaluates or plots) must not wait for the others: outside
    whole_batch() nothing is summed across processes, even with two of them."""
    code = (
        "from tinybt import distributed\n"
        "from tinybt.methods.common import cross_correlation\n"
        "import numpy as np\n"
        "if distributed.rank() == 0:\n"
        "    z = np.random.default_rng(0).standard_normal((8, 3))\n"
        "    print(cross_correlation(z, z).shape, distributed.size())\n"
    )
    command = [MPIEXEC, "-n", "2", sys.executable, "-c", code]
    result = subprocess.run(
        command, cwd=ROOT, env=launched_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stdout.split() == ["(3,", "3)", "2"], result.stderr
