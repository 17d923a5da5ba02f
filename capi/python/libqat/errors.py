"""The C ABI's status codes as Python exceptions.

Every failed call raises a subclass of libqat.Error that carries `code`
(absl's canonical code, as QatStatusCode) and `message` (the library's
message, naming the file, tensor, node or setting).
"""

CANCELLED, UNKNOWN, INVALID_ARGUMENT, NOT_FOUND = 1, 2, 3, 5
PERMISSION_DENIED, RESOURCE_EXHAUSTED, FAILED_PRECONDITION = 7, 8, 9
OUT_OF_RANGE, UNIMPLEMENTED, INTERNAL, DATA_LOSS = 11, 12, 13, 15


class Error(Exception):
    """A libqat call failed; `code` and `message` are the C status's."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self):
        return f"{self.message} [{type(self).__name__}, code {self.code}]"


class Cancelled(Error):
    pass


class Unknown(Error):
    pass


class InvalidArgument(Error, ValueError):
    pass


class NotFound(Error, FileNotFoundError):
    pass


class PermissionDenied(Error, PermissionError):
    pass


class ResourceExhausted(Error, MemoryError):
    pass


class FailedPrecondition(Error):
    pass


class OutOfRange(Error):
    pass


class Unimplemented(Error, NotImplementedError):
    pass


class Internal(Error):
    pass


class DataLoss(Error):
    pass


class LibraryNotFound(ImportError):
    """libqat.so could not be found or loaded; the message says where it looked."""


_BY_CODE = {CANCELLED: Cancelled, UNKNOWN: Unknown, INVALID_ARGUMENT: InvalidArgument,
            NOT_FOUND: NotFound, PERMISSION_DENIED: PermissionDenied,
            RESOURCE_EXHAUSTED: ResourceExhausted, FAILED_PRECONDITION: FailedPrecondition,
            OUT_OF_RANGE: OutOfRange, UNIMPLEMENTED: Unimplemented, INTERNAL: Internal,
            DATA_LOSS: DataLoss}


def from_status(code, message):
    """The exception for a C status (Unknown for a code this package does not know)."""
    return _BY_CODE.get(code, Unknown)(code, message)
