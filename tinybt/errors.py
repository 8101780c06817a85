"""How errors reach the user: one line that says what to do, never a traceback."""

import argparse


class TinyBTError(Exception):
    """Something the user can fix: a wrong path, a corrupt file, an impossible option.

    The message is one line that says what was wrong and what to do. The command-line
    programs print it as `error: <message>` and exit with status 2.
    """


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, with its complaints about the command line as one `error:` line (exit 2)
    instead of the usage text followed by the error, and without abbreviated flags (a typo
    such as --epoch must not quietly mean --epochs)."""

    def __init__(self, **options):
        super().__init__(allow_abbrev=False, **options)

    def error(self, message):
        self.exit(2, f"error: {message} (`{self.prog} --help` lists the options)\n")
