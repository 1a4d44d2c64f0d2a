"""saga's exception tree, and the one translation between it and errnos.

Every error a user can cause or meet is a SagaError with a one-line,
actionable message, the exit code the CLI returns for it (sysexits.h) and
the errno it stands for where an errno is the answer (a write to
/sagafs/rules, docs/sagafs.md): the class's, or the one the system gave.
Lower layers raise these; only the CLI prints them.

errno -> SagaError: `from_oserror`, at every boundary that meets an OSError
(the drivers, the database's directory, the daemon's files and sockets,
the mount point, rule files).  SagaError -> errno: the error's `errno`.
"""
from __future__ import annotations

import errno as _errno
import os

EX_USAGE = 64        # bad command line or bad rule
EX_DATAERR = 65      # bad input data
EX_NOINPUT = 66      # an input file does not exist
EX_UNAVAILABLE = 69  # no driver can run here
EX_SOFTWARE = 70     # internal error
EX_OSERR = 71        # the operating system refused something
EX_IOERR = 74        # an I/O error
EX_TEMPFAIL = 75     # try again later (busy)
EX_NOPERM = 77       # permission denied
EX_CONFIG = 78       # bad configuration or database


class SagaError(Exception):
    exit_code = EX_SOFTWARE
    errno = _errno.EIO

    def __init__(self, message: str, *, exit_code: int | None = None, errno: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
        if errno:
            self.errno = errno


class UsageError(SagaError):
    exit_code = EX_USAGE
    errno = _errno.EINVAL


class RuleError(UsageError):
    """A rule that does not parse or cannot be applied."""


class DriverUnavailable(SagaError):
    exit_code = EX_UNAVAILABLE


class DriverBusy(SagaError):
    """Another daemon owns the driver (one daemon per driver), or it is in use and cannot be unloaded."""

    exit_code = EX_TEMPFAIL
    errno = _errno.EBUSY


class OSFailure(SagaError):
    """The operating system refused something (from_oserror keeps its errno)."""

    exit_code = EX_OSERR


class WriteFailed(SagaError):
    """A file could not be written (saga rules save)."""

    exit_code = EX_IOERR


class DriverError(OSFailure):
    """A driver operation failed; errno is kept for callers that branch on it."""


class PermissionDenied(SagaError):
    exit_code = EX_NOPERM
    errno = _errno.EACCES


class RulesLocked(PermissionDenied):
    """Rules were locked (`saga rules lock`) and stay immutable until unload."""

    errno = _errno.EPERM


class ConfigError(SagaError):
    exit_code = EX_CONFIG


class StoreError(SagaError):
    exit_code = EX_CONFIG


def from_oserror(exc: OSError, what: str, cls: type[SagaError] = DriverError, *, hint: str = "run as root",
                 denied: type[SagaError] = PermissionDenied) -> SagaError:
    """`what` failed with `exc`: `denied` (PermissionDenied, saying `hint`) for EPERM and EACCES, else
    `cls`; the message is `WHAT: REASON`, and the errno is kept."""
    code = exc.errno
    reason = os.strerror(code) if code else str(exc)
    if code in (_errno.EPERM, _errno.EACCES):
        return denied(f"{what}: {reason} ({hint})", errno=code)
    return cls(f"{what}: {reason}", errno=code)
