"""Prints how many attack variants each route received in this run (tests/security/test_replay.py)."""

from __future__ import annotations


def pytest_terminal_summary(terminalreporter) -> None:
    import sys

    replay = sys.modules.get("tests.security.test_replay") or sys.modules.get("test_replay")
    sent = getattr(replay, "SENT", None)
    if not sent:
        return
    terminalreporter.section("security replay: variants sent per route")
    for route, n in sorted(sent.items()):
        terminalreporter.write_line(f"{n:6d}  {route}")
    terminalreporter.write_line(f"{sum(sent.values()):6d}  in all")
