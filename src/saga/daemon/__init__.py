"""The saga daemon: drains the driver into the event window, the archive and /sagafs (docs/daemon.md).

`service.Daemon` runs it; `state.DaemonState` is what sagafs handlers read;
`control` is the local control socket and `client` the CLI's end of it.
"""
