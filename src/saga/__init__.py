"""saga: syscall logging for Linux."""

__version__ = "0.1.0"
