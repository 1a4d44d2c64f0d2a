"""`saga query`: search the archive; exit 1 when nothing matches (as ausearch does).

The options that select events (saga.cli.options.SELECT) are shared with
`saga log`, `saga report` and `saga stats --pid/--comm`; what the command
does is saga.cli.search.run_query.
"""
from __future__ import annotations

from saga.cli import options

query = options.command(options.QUERY, options.later("saga.cli.search", "run_query"),
                        "Search the archive, in archive order. Exit status 1 when no event matches.")
