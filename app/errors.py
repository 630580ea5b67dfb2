"""Domain errors; app.web maps them to HTTP status codes in one place. And how a background job ends early,
so that every package whose work runs as a job (training, embeddings) can say it without importing the worker."""


class LoupeError(Exception):
    """Base for errors a user can act on; the message is shown as is."""

    status_code = 400

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class NotFound(LoupeError):
    status_code = 404


class Conflict(LoupeError):
    status_code = 409


class InvalidInput(LoupeError):
    status_code = 422


class Unavailable(LoupeError):
    """Something Loupe depends on (the image store, a remote server) cannot be reached; retrying may work."""

    status_code = 503


class TrainingError(Exception):
    """A readable reason a job cannot run (bad snapshot, missing file, out of memory)."""


class Cancelled(Exception):
    """The job was cancelled while it ran."""
