"""Errors a user can act on. Each message says what to do next; the CLI prints it and exits 1."""


class QAError(Exception):
    """An expected failure with a message meant for the user."""


class CorpusError(QAError):
    """The corpus is missing, empty, or not something qa can read."""


class IndexMissingError(QAError):
    """There is no index where one was expected."""


class IndexCorruptError(QAError):
    """The index exists but its files are missing, unreadable, or inconsistent."""


class ModelError(QAError):
    """The embedding model cannot be loaded, or does not match the index."""


class InputError(QAError):
    """A question or questions file that cannot be used."""


class IndexWriteError(QAError):
    """The index cannot be written where it was asked for (not qa's, or not writable)."""


class IndexBusyError(QAError):
    """Another writer holds the index's lock."""


class ClusterError(QAError):
    """The Ray cluster asked for cannot be used (not installed, unreachable, a worker died)."""


class StoreError(QAError):
    """The vector store (a Milvus server or file) cannot be reached or used."""
