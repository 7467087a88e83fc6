"""Zip containers (DOCX, EPUB) opened with bounded memory: a member is inflated in steps and
never past a limit, whatever sizes the archive declares (zipfile's read() inflates a member
whole before it cuts it to its declared size, so a few MB of zip bomb would take GBs)."""

from __future__ import annotations

import io
import zipfile
import zlib

from qa.corpus import SkippedSource

MAX_MEMBERS = 10_000
MAX_UNZIPPED = 256 << 20  # all members together, inflated
_STEP = 1 << 20
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # an encrypted Office file, or a .doc renamed


def open_zip(source: str, data: bytes, kind: str) -> zipfile.ZipFile:
    """The archive in data; SkippedSource when it is not one (kind names what it should be)."""
    if data.startswith(_OLE):
        raise SkippedSource(f"{source}: encrypted (or an old binary file, not {kind}), skipped")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        raise SkippedSource(f"{source}: not {kind} (not a zip archive), skipped") from None
    if len(members) > MAX_MEMBERS:
        raise SkippedSource(f"{source}: {len(members):,} files inside, more than qa reads, skipped")
    return archive


def read_member(
    source: str, archive: zipfile.ZipFile, name: str, budget: list[int], keep: bool = True
) -> bytes:
    """One member's bytes (b"" unless keep), inflated a step at a time; budget[0] is what may
    still be inflated from this archive, and shrinks. SkippedSource for a damaged member or
    one over budget."""
    chunks: list[bytes] = []
    try:
        with archive.open(name) as member:
            while chunk := member.read(_STEP):
                budget[0] -= len(chunk)
                if budget[0] < 0:
                    raise SkippedSource(
                        f"{source}: inflates to more than {MAX_UNZIPPED >> 20} MiB "
                        "(a zip bomb?), skipped"
                    )
                if keep:
                    chunks.append(chunk)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError):
        raise SkippedSource(f"{source}: damaged archive ({name}), skipped") from None
    return b"".join(chunks)


def check_members(source: str, archive: zipfile.ZipFile) -> None:
    """Inflate every member once, within MAX_UNZIPPED, before a library reads them all."""
    budget = [MAX_UNZIPPED]
    for info in archive.infolist():
        if not info.is_dir():
            read_member(source, archive, info.filename, budget, keep=False)
