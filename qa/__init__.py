"""qa: local, offline semantic search and question answering with exact citations."""

__version__ = "0.1.0"
