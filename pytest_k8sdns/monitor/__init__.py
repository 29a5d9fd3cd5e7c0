"""The disruption monitor (check 16): probe streams on every chosen node while a change runs.
timeline.py is the data, core.py the monitor, change.py runs a change under it, scenarios.py the
built-in changes, fixtures.py the pytest layer; the verdict is verdict/disruption.py."""
