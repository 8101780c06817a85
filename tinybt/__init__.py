"""tinybt: Barlow Twins self-supervised learning from scratch in NumPy."""

import os
import signal
import sys

if sys.argv[:1] == ["-m"]:
    # `python -m tinybt.NAME` is starting (Python sets argv[0] to "-m" while it imports the
    # package of the module to run). Until NAME's main() takes Ctrl-C over (run_program in
    # tinybt/errors.py), Ctrl-C stops the program at once, quietly, with the shell's status
    # 130: nothing has been written yet, and an interrupt inside NumPy's import would otherwise
    # come out as a traceback, or as an ImportError that blames the installation.
    signal.signal(signal.SIGINT, lambda signum, frame: os._exit(130))
