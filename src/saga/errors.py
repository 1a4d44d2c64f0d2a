"""saga's exception tree.

Every error a user can cause or meet is a SagaError with a one-line,
actionable message and the exit code the CLI returns for it (sysexits.h).
Lower layers raise these; only the CLI prints them.
"""
from __future__ import annotations

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

    def __init__(self, message: str, *, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(SagaError):
    exit_code = EX_USAGE


class RuleError(UsageError):
    """A rule that does not parse or cannot be applied."""


class RuleRefused(RuleError):
    """A driver refused a rule list (EINVAL, EEXIST, ENOSPC: docs/kernel-abi.md); the errno is kept."""

    def __init__(self, message: str, *, errno: int):
        super().__init__(message)
        self.errno = errno


class DriverUnavailable(SagaError):
    exit_code = EX_UNAVAILABLE


class DriverError(SagaError):
    """A driver operation failed; errno is kept for callers that branch on it."""

    exit_code = EX_OSERR

    def __init__(self, message: str, *, errno: int | None = None, exit_code: int | None = None):
        super().__init__(message, exit_code=exit_code)
        self.errno = errno


class PermissionDenied(SagaError):
    exit_code = EX_NOPERM


class RulesLocked(PermissionDenied):
    """Rules were locked (`saga rules lock`) and stay immutable until unload."""


class ConfigError(SagaError):
    exit_code = EX_CONFIG


class StoreError(SagaError):
    exit_code = EX_CONFIG


def from_oserror(exc: OSError, what: str) -> SagaError:
    """Translate an OSError met while doing `what` into a SagaError."""
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    if exc.errno in (1, 13):  # EPERM, EACCES
        return PermissionDenied(f"{what}: {reason} (run as root)")
    return DriverError(f"{what}: {reason}", errno=exc.errno)
