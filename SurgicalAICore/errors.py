"""Exceptions of the extension. Their message is one line a user can act on."""


class SurgicalAIError(Exception):
    """Base class: anything the panel, the API or the CLI reports to the user as-is."""

    def __str__(self) -> str:
        # one line whatever a message quotes (a file name, a user's text with line breaks)
        return " ".join(part.strip() for part in super().__str__().splitlines() if part.strip())


class InputError(SurgicalAIError, ValueError):
    """The data or settings given to an operation cannot be used."""


class ModelError(SurgicalAIError):
    """A model folder is missing, corrupt or does not match its model card."""


class OperationCancelled(SurgicalAIError):
    """The user cancelled a long operation; nothing was changed."""

    def __init__(self, message: str = "Cancelled by the user; nothing was changed."):
        super().__init__(message)
