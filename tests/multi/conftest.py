"""Tests of several daemons sharing one store: collected only with MAILDESK_TEST_PG_URL (`.ci/run` sets it)."""

import os

collect_ignore_glob = [] if os.environ.get("MAILDESK_TEST_PG_URL") else ["test_*.py"]
