"""How errors reach the user: one line that says what to do, never a traceback."""

import argparse
import errno
import os
import signal
import sys
from pathlib import Path

import tinybt


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


# What to do about the file system's refusals of a path the user gave, by errno.
PATH_ADVICE = {
    errno.ENAMETOOLONG: "shorten it: a name in a path may be at most 255 bytes",
    errno.EACCES: "give yourself access to it, or choose another path",
    errno.EPERM: "give yourself access to it, or choose another path",
    errno.EROFS: "choose a folder on a disk you can write to",
    errno.ENOSPC: "free some space and run it again",
    errno.ENOTDIR: "a part of the path is a file, not a folder: check the path",
    errno.ELOOP: "it is a loop of symbolic links: check the path",
}


def path_error_line(error):
    """One line for an OSError about a file or folder, or None for one with no path.

    The file system's own refusals (a name over its length limit, a file without
    permission, a read-only or full disk) can come from any open or mkdir on a path the user
    gave; run_program turns those the program did not catch itself into this one line."""
    if error.filename is None:
        return None
    advice = PATH_ADVICE.get(error.errno, "check the path")
    return f"{error.strerror or error}: {error.filename} ({advice})"


def run_program(main):
    """Run a program's `main()` and exit with the status it returns.

    An OSError about a path ends it with one `error:` line and status 2 (path_error_line).
    Ctrl-C that main does not catch ends the program with status 130, as from the shell.
    Output piped into a command that stops reading early (`python -m tinybt.train --help |
    head -1`) ends the program quietly, with the status of a process stopped by SIGPIPE (141),
    instead of a BrokenPipeError traceback from the next write or the final flush.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C: KeyboardInterrupt again
    try:
        try:
            status = main()
        finally:  # the buffered output is written here, while the error can still be caught
            if sys.stdout is not None:  # None when started with stdout closed (`>&-`)
                sys.stdout.flush()
    except KeyboardInterrupt:  # what a program does not catch itself: stop, without a traceback
        status = 130
    except BrokenPipeError:
        # Python flushes stdout once more as it exits; pointing it at /dev/null keeps that quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.dup2(devnull, sys.stderr.fileno())
        status = 141
    except OSError as error:
        if path_error_line(error) is None:
            raise
        print(f"error: {path_error_line(error)}", file=sys.stderr)
        status = 2
    sys.exit(status)


def _refuse_shadowing_folder():
    """Stop, in one line, when a folder named tinybt in the current folder (a clone of the
    repository, say) hides the installed package. Python imports such a folder first, as a
    package without files; its own subfolders (a clone's data/) then stand in for tinybt's
    modules of the same name, and the imports fail in their own confusing ways."""
    if getattr(tinybt, "__file__", None) is not None:
        return
    installed = _module_names(Path(__file__).resolve().parent)
    for folder in map(Path, tinybt.__path__):
        clashes = sorted(_module_names(folder) & installed)
        if clashes:
            message = (
                f"the folder {folder.resolve()} hides the installed tinybt (Python imports a "
                f"folder named tinybt in the current folder first, and its {clashes[0]} stands "
                f"in for tinybt.{clashes[0]}): run the command from another folder"
            )
            if _program_started():
                sys.stderr.write(f"error: {message}\n")
                raise SystemExit(2)
            raise ImportError(message)


def _module_names(folder):
    """The names that `import tinybt.NAME` could find in `folder`: its files and subfolders,
    less the hidden and private ones (.git, __pycache__)."""
    return {path.stem for path in folder.iterdir() if not path.name.startswith(("_", "."))}


def _program_started():
    """Whether the process runs one of tinybt's programs (`python -m tinybt.NAME`)."""
    main_spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return main_spec is not None and main_spec.name.startswith("tinybt.")


_refuse_shadowing_folder()
