"""Errors written for people: the CLI prints them without a traceback, and so does Jupyter.

Each kind also subclasses the builtin it stands for (scikit-learn's ``NotFittedError(ValueError,
AttributeError)`` pattern), so ``except ValueError`` in a user's code keeps working.
"""


class LabkitError(RuntimeError):
    """Something the user can fix; the message says how."""

    def _render_traceback_(self) -> list[str]:
        # IPython shows this instead of a traceback: the sentence is the whole story.
        return [f"{type(self).__name__}: {self}"]


class ConfigError(LabkitError, ValueError):
    """An argument or option the kit cannot use (a learning rate of 0, an unknown device...)."""


class DivergedError(LabkitError, FloatingPointError):
    """Training produced a non-finite loss; nothing was written."""


class RunExistsError(LabkitError, FileExistsError):
    """The run folder exists and is not empty, and overwriting it was not asked for."""


class LayerNotFound(LabkitError, KeyError):
    """A layer name the model (or the snapshots) does not have; the message lists where to
    look. A ``KeyError`` too, for ``except KeyError``."""

    # KeyError's own str() would show the sentence in quotes, as the repr of a key.
    __str__ = BaseException.__str__
