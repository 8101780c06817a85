"""P processes sharing one batch, played by P threads of this one process: no MPI, no launcher.

tinybt.distributed reaches MPI through two functions, `_communicator` (COMM_WORLD: its size,
this process's rank, the all-gather) and `_all_reduce` (the sum over the processes). `Threads`
stands in for both: each thread is one process with a rank of its own, and a sum or a gather
waits, at a barrier, for every thread's part, as MPI's collectives wait for every process's.
Inside `Threads.run` the ops therefore see what they see in a run of P processes: their own
rows only, and the whole batch's statistics through the library's sums.
"""

import threading

import numpy as np

from tinybt import backend, distributed

WAIT_SECONDS = 60  # a thread that never reaches a sum (its code failed) must not hang the rest


class Threads:
    """`size` processes in threads, each with its rank; the communicator's methods that
    tinybt.distributed calls, and `run`, which runs one function on every process."""

    def __init__(self, size):
        self.size = size
        self.barrier = threading.Barrier(size, timeout=WAIT_SECONDS)
        self.parts = [None] * size
        self.here = threading.local()

    def Get_size(self):  # noqa: N802 (MPI's spelling)
        return self.size

    def Get_rank(self):  # noqa: N802
        return self.here.rank

    def exchange(self, array):
        """Every process's `array`, in rank order, once all have given theirs."""
        self.parts[self.here.rank] = np.array(backend.to_host(array))
        self.barrier.wait()
        parts = list(self.parts)
        self.barrier.wait()  # no process overwrites its part before every one has read it
        return parts

    def Allgather(self, send, receive):  # noqa: N802
        receive[...] = np.concatenate(self.exchange(send))

    def all_reduce(self, array):
        return distributed._like(array, np.sum(self.exchange(array), axis=0))

    def run(self, monkeypatch, function, *shares):
        """[function(*its shares)] for each process, in rank order, inside whole_batch().

        shares: one list per argument, the part of each process. An exception raised by any
        process is raised here (the others are released from their wait)."""
        monkeypatch.setattr(distributed, "_communicator", lambda: self)
        monkeypatch.setattr(distributed, "_all_reduce", self.all_reduce)
        results, errors = [None] * self.size, [None] * self.size

        def process(rank):
            self.here.rank = rank
            try:
                results[rank] = function(*(share[rank] for share in shares))
            except BaseException as error:  # noqa: BLE001 (raised again below, in the test)
                errors[rank] = error
                self.barrier.abort()

        # entered once for all: whole_batch() sets one flag of the module, which every
        # thread reads
        with distributed.whole_batch():
            threads = [threading.Thread(target=process, args=(r,)) for r in range(self.size)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        raised = [error for error in errors if error is not None]
        if raised:  # the process that failed first, not those it released from the barrier
            released = threading.BrokenBarrierError
            raise next((e for e in raised if not isinstance(e, released)), raised[0])
        return results


def split(array, size, axis=0):
    """`array` cut into `size` equal shares along `axis`, as tinybt.distributed.batch_share
    cuts a batch: process r takes the r-th."""
    return np.split(array, size, axis=axis)


def ratio(got, expected):
    """The factor by which `got` is `expected` scaled, by least squares; nan if expected is 0."""
    norm = float(np.sum(expected * expected))
    return float(np.sum(got * expected)) / norm if norm else float("nan")
