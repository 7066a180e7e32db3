"""User-facing errors.

Every problem caused by user input (a missing file, a malformed annotation, an unknown
condition) is raised as a :class:`TwingapError`. The CLI prints it as one line naming the
file and the problem and exits with code 2; the full traceback is shown only with ``--debug``.
"""

from __future__ import annotations

from pathlib import Path


class TwingapError(Exception):
    """An error in user input, reported as one line and exit code 2.

    Args:
        message: What is wrong, in words a user can act on.
        path: The file or folder concerned, if any; printed before the message.
    """

    exit_code = 2

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.message = message
        self.path = None if path is None else str(path)
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """Return the error as ``"<path>: <message>"`` (or just the message)."""
        return f"{self.path}: {self.message}" if self.path else self.message
