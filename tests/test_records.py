"""The experiment records' faults: programs that must run as one process refuse a launcher,
a record's line is written whole or not at all, and every line read is checked against the
record's schema, so a bad line stops the verdicts in one line instead of changing them."""

import importlib

import pytest

ONE_PROCESS_PROGRAMS = ("experiments", "evaluate", "book", "exercises")


@pytest.mark.parametrize("program", ONE_PROCESS_PROGRAMS)
def test_one_process_programs_refuse_a_launcher(program, monkeypatch, capsys):
    main = importlib.import_module(f"tinybt.{program}").main
    monkeypatch.setenv("PMI_SIZE", "2")
    with pytest.raises(SystemExit) as stopped:
        main(["--help"])
    assert stopped.value.code == 2
    message = capsys.readouterr().err
    assert message.startswith(f"error: python -m tinybt.{program} runs as one process: start it")
    assert message.count("\n") == 1
