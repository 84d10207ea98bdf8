import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

RELIABILITY = "tests/test_reliability.py"


def pytest_terminal_summary(terminalreporter):
    """The reliability suite's summary (cases, kills, steps lost, bit-exactness, runtime), if it ran."""
    module = sys.modules.get("tests.test_reliability")
    if module is None:
        return
    seconds = sum(getattr(report, "duration", 0.0) for reports in terminalreporter.stats.values()
                  for report in reports if getattr(report, "nodeid", "").startswith(RELIABILITY))
    lines = module.summary_lines(seconds)
    if lines:
        terminalreporter.section("reliability summary")
        for line in lines:
            terminalreporter.write_line(line)
