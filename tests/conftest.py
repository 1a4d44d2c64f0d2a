"""Every suite: `saga` commands run in their own process (SAGA_NO_SERVER), so that no suite leaves a command
server behind; tests/unit/test_cli_server.py runs its own, each in a private runtime directory.  Property
tests have no time limit per example: hypothesis's 200 ms deadline failed them on a loaded machine, and a
test's outcome must not depend on how fast the machine runs it."""
import os

os.environ["SAGA_NO_SERVER"] = "1"

try:
    from hypothesis import settings
except ImportError:         # the suites that run without hypothesis (VM guests) use no property tests
    pass
else:
    settings.register_profile("saga", deadline=None)
    settings.load_profile("saga")
