"""Exploration: search for inputs on which a check fails that no case covers, and keep each as a case.

    klconf explore --budget 10m [--seed N] [--framework ...] [--api module:OBJECT] [--dtype ...] [--check ...]

Targets (targets.py, pairs.py) run the suite's own checks on inputs Hypothesis draws (strategies.py);
the search (search.py) shrinks every failure and groups failures by mechanism; each finding is saved
as a case with its oracle values, a draft expectation entry and a reproduction snippet (save.py);
plan.py lists the targets a selection allows. Nothing is imported here: the command line loads this
package's commands module when it builds its parser.
"""
