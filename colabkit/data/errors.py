"""The exceptions of :mod:`colabkit.data`: every one is a :class:`DataError` whose message says what to do."""

from __future__ import annotations


class DataError(Exception):
    """Base class of every error raised by :mod:`colabkit.data`."""


class DownloadError(DataError):
    """The file could not be downloaded (network failure, incomplete transfer)."""


class HTTPStatusError(DownloadError):
    """The server answered with an HTTP error status (``status``, ``url``)."""

    def __init__(self, message: str, *, url: str, status: int):
        super().__init__(message)
        self.url = url
        self.status = status


class HTMLPageError(DownloadError):
    """An HTML page arrived where a binary file was expected."""


class DriveError(DownloadError):
    """Google Drive refused to hand out the file."""


class DriveQuotaError(DriveError):
    """Google Drive's download quota for the file is used up ("Too many users ...")."""


class DrivePermissionError(DriveError):
    """Google Drive asked to sign in or denied access: the file is not (or no longer) public."""


class ChecksumError(DataError):
    """A file's checksum differs from the expected one; the bad file has been deleted."""

    def __init__(self, message: str, *, algorithm: str, expected: str, actual: str):
        super().__init__(message)
        self.algorithm = algorithm
        self.expected = expected
        self.actual = actual


class ArchiveError(DataError):
    """An archive is damaged, truncated or of an unknown kind."""


class UnsafeArchiveError(ArchiveError):
    """An archive member would be written outside the destination folder."""


class LayoutError(DataError):
    """Expected files or folders are missing (``missing``; ``found`` lists the top level)."""

    def __init__(self, message: str, *, missing: list[str], found: list[str]):
        super().__init__(message)
        self.missing = missing
        self.found = found


class CorruptFileError(DataError):
    """A data file is truncated or corrupt."""
