"""Every suite: `saga` commands run in their own process (SAGA_NO_SERVER), so that no suite leaves a command
server behind; tests/unit/test_cli_server.py runs its own, each in a private runtime directory."""
import os

os.environ["SAGA_NO_SERVER"] = "1"
