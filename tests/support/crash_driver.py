"""Run a real ingest that SIGKILLs itself at the Nth pass of a named checkpoint (for test_crash.py).

Usage: python crash_driver.py DATA_DIR POINT N PATH...   (POINT 'none' runs to completion)
"""

import json
import os
import signal
import sys

from api.settings import Settings
from api.wiring import build_ingestor


def killer(point: str, n: int):
    """An ingest event hook that SIGKILLs this process at the Nth pass of checkpoint `point`."""
    seen = 0

    def on_event(kind: str, data: dict) -> None:
        nonlocal seen
        if kind == "checkpoint" and data["at"] == point:
            seen += 1
            if seen == n:
                os.kill(os.getpid(), signal.SIGKILL)

    return on_event


def main() -> None:
    data_dir, point, n, paths = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
    on_event = killer(point, n)
    s = Settings(data_dir=data_dir)
    s.ingest.batch_chunks = 8  # several flushes even on the small sample corpus
    report = build_ingestor(s, on_event=on_event).ingest(paths)
    print(json.dumps(report.to_dict()))


if __name__ == "__main__":
    main()
