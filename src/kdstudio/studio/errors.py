"""The one error the studio raises for input it cannot use as given."""

from __future__ import annotations


class UserInputError(ValueError):
    """Input the studio cannot use as it is; the message says what to do instead."""


def user_errors() -> tuple[type[Exception], ...]:
    """Errors whose message is written for the user (the core raises them at its edges)."""
    from ..augment import SpacyModelError
    from ..data import DataError
    from ..jobs import JobBusy
    from ..teacher import TeacherError

    return (UserInputError, DataError, TeacherError, SpacyModelError, JobBusy, ValueError)
