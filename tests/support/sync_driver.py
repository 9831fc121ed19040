"""Run a real Confluence sync that SIGKILLs itself at the Nth pass of a named ingest checkpoint.

Usage: python sync_driver.py DATA_DIR POINT N URL FLAVOR CREDENTIALS_JSON   (POINT 'none' runs to completion)
"""

import json
import sys

from crash_driver import killer  # the same kill hook as the ingest crash tests (both run as scripts from tests/support/)
from api.settings import Settings
from api.wiring import build_ingestor
from ingest.sources.confluence import ConfluenceSource
from ingest.sync import Syncer


def main() -> None:
    data_dir, point, n, url, flavor, creds = sys.argv[1], sys.argv[2], int(sys.argv[3]), *sys.argv[4:7]
    on_event = killer(point, n)
    s = Settings(data_dir=data_dir)
    s.ingest.batch_chunks = 4  # several flushes even for a small space
    src = ConfluenceSource("eng-wiki", url, flavor=flavor, spaces=["ENG"], page_size=3, **json.loads(creds))
    print(json.dumps(Syncer(build_ingestor(s, on_event=on_event)).sync(src).to_dict()))


if __name__ == "__main__":
    main()
