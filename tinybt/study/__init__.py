"""The study: the experiments that test the review's claims, apart from the library.

`grids` names the grids of runs and their configurations, `records` reads and appends the
record of a grid's finished runs, `runner` trains a grid's runs, `comparison` turns the
records into the claims' verdicts, and `tags` names the variants both sides use. The program
is `python -m tinybt.experiments`. Nothing in the rest of tinybt imports this package.
"""
