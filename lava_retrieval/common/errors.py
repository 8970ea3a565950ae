"""Exceptions that the command line turns into one clear message and exit status 2."""

from __future__ import annotations


class LavaRetrievalError(Exception):
    """Base class of every error the project raises on bad input.

    The CLI prints ``error: <message>`` for these, without a traceback, and exits with 2.

    >>> str(LavaRetrievalError("no such file"))
    'no such file'
    """


class DataError(LavaRetrievalError):
    """A data set file is missing, truncated, malformed or does not match its checksum."""


class CheckpointError(LavaRetrievalError):
    """A checkpoint is missing, incomplete or inconsistent with its architecture."""


class SpecError(LavaRetrievalError, ValueError):
    """An architecture spec string such as ``32-64-10`` cannot be parsed."""
