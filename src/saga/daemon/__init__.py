"""The saga daemon: drains the driver into the event window, the archive and /sagafs."""
