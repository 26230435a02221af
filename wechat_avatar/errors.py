"""Named errors raised by the library. Only the CLI turns them into one-line messages."""


class AvatarError(Exception):
    """Base class: `str(err)` is a complete sentence; `hint` says what to do next."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class UsageError(AvatarError):
    """The command was called with something it cannot work with."""

    exit_code = 2


class DecryptError(AvatarError):
    """An encrypted database could not be opened with the given key."""

    exit_code = 2


class SourceFormatError(AvatarError):
    """An input file is not in any format we read, or is damaged."""

    exit_code = 2


class ConfigError(AvatarError):
    """avatar.yaml or a flag has an invalid value."""

    exit_code = 2


class WorkspaceError(AvatarError):
    """The workspace cannot be created, written, or belongs to another account."""

    exit_code = 3


class DatasetError(AvatarError):
    """A dataset build failed for a reason other than its input (e.g. its writer process died)."""


class ModelError(AvatarError):
    """A model, tokenizer or adapter cannot be found, loaded, or does not fit the base model."""

    exit_code = 2


class TrainingError(AvatarError):
    """Training cannot start or stopped: no data, out of memory, a checkpoint that does not resume."""

    exit_code = 2


class BackendError(AvatarError):
    """A model server we generate through (vLLM) is unreachable, refuses us, or failed a request.

    `status` is what our own API answers a client with: 503 when the server cannot be reached, 502
    when it answered with an error."""

    exit_code = 2

    def __init__(self, message: str, hint: str = "", status: int = 502) -> None:
        super().__init__(message, hint)
        self.status = status
