"""Errors raised on bad input: each message names the problem and the fix."""

from __future__ import annotations


class InputError(ValueError):
    """The user's input cannot be used; the message says why and what to do."""

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(problem if fix is None else f"{problem} Fix: {fix}")
