"""`saga report`: the archive summarised by syscall, process, user, file or errno (docs/cli.md).

Calls, failures and latency (p50, p99, total time) per group, as a table
or JSON, over the events the filter options select (the options of `saga
query`); what the command does is saga.cli.search.run_report.
"""
from __future__ import annotations

from saga.cli import options

report = options.command(options.REPORT, options.later("saga.cli.search", "run_report"),
                         "Summarise archived events: calls, failures, p50/p99/total latency per group. "
                         "Exit 1 when none match.")
