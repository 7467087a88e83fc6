"""Metadata every reader shares: dates normalised to ISO 8601, tags, and text decoded from
bytes in whatever encoding a file uses."""

from __future__ import annotations

import codecs
import re
from datetime import date, datetime

from qa.corpus import SkippedSource

SNIFF = 8192  # a binary file has a NUL in its first bytes (UTF-16/32 with a BOM aside)
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: its BOM starts the same way
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def decode(data: bytes, source: str) -> tuple[str, str]:
    """Bytes to the text every offset refers to, and the encoding used: a BOM's (UTF-8,
    UTF-16, UTF-32), else UTF-8, else what charset-normalizer finds (latin-1, cp1252, ...).
    Line ends become \\n. SkippedSource for a binary file."""
    encoding = next((name for bom, name in _BOMS if data.startswith(bom)), None)
    if encoding is None:
        if b"\x00" in data[:SNIFF]:
            raise SkippedSource(f"{source}: binary file, skipped")
        try:
            text = data.decode("utf-8")
            encoding = "utf-8"
        except UnicodeDecodeError:
            text, encoding = _detected(data, source)
    else:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as exc:
            raise SkippedSource(
                f"{source}: not valid {encoding} (byte {exc.start}), skipped"
            ) from None
    text = text.removeprefix("\ufeff")
    if "\x00" in text[:SNIFF]:
        raise SkippedSource(f"{source}: binary file, skipped")
    return text.replace("\r\n", "\n").replace("\r", "\n"), encoding


def _detected(data: bytes, source: str) -> tuple[str, str]:
    from charset_normalizer import from_bytes

    matches = list(from_bytes(data[: 1 << 20]))  # the first MiB decides, as a browser's sniffing
    if not matches:
        raise SkippedSource(f"{source}: not text in any encoding qa recognises, skipped")
    # charset-normalizer ranks by "chaos" alone, so French in latin-1 comes out as Baltic
    # cp1257 (chaos 0.0 against cp1252's 0.031): among the near-best, the commonest wins.
    least = min(m.chaos for m in matches)
    near = [m.encoding for m in matches if m.chaos <= least + 0.05]
    encoding = min(near, key=lambda e: COMMON.index(e) if e in COMMON else len(COMMON))
    try:
        return data.decode(encoding), _name(encoding)
    except (UnicodeDecodeError, LookupError):
        raise SkippedSource(f"{source}: not valid {encoding}, skipped") from None


# Legacy encodings by how common they are on the web (windows-1252 first: what browsers read
# "latin-1" as), to break near ties between charset-normalizer's candidates.
COMMON = (
    "cp1252",
    "cp1251",
    "gb18030",
    "gbk",
    "shift_jis",
    "euc_kr",
    "big5",
    "cp1250",
    "iso8859_15",
    "iso8859_2",
    "cp1253",
    "cp1254",
    "cp1256",
    "cp1255",
    "koi8_r",
    "euc_jp",
)


def _name(encoding: str) -> str:
    return codecs.lookup(encoding).name


_NUMERIC = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?")


def iso_date(value: object) -> str | None:
    """A date as ISO 8601 (YYYY-MM-DD; with the time when there is one), from the forms
    articles use: ISO, RFC 2822 (e-mail, RSS), 'March 5, 2024', '5 Mar 2024', '2024/03/05',
    datetime objects (YAML). None when it is not a date."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int) and not isinstance(value, bool) and 10_000_000 <= value < 30_000_000:
        value = str(value)  # 20240101
    if not isinstance(value, str) or not value.strip() or len(value) > 100:
        return None
    text = value.strip()
    if _NUMERIC.fullmatch(text):
        return text
    try:
        parsed: datetime | None = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        parsed = _parsed(text)
    if parsed is None:
        return None
    if (parsed.hour, parsed.minute, parsed.second, parsed.tzinfo) == (0, 0, 0, None):
        return parsed.date().isoformat()
    return parsed.isoformat()


def _parsed(text: str) -> datetime | None:
    from email.utils import parsedate_to_datetime

    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        pass
    from dateutil import parser

    try:
        found: datetime = parser.parse(text, default=datetime(1, 1, 1))
    except (ValueError, OverflowError, TypeError):
        return None
    return found if found.year > 1 else None  # no year: not a date an article has


def tag_list(value: object) -> list[str]:
    """Tags from a list, or a comma- or semicolon-separated string; trimmed, de-duplicated."""
    items: list[object]
    if isinstance(value, str):
        items = list(re.split(r"[,;]", value))
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        return []
    out: list[str] = []
    for item in items:
        if isinstance(item, str | int | float) and not isinstance(item, bool):
            tag = str(item).strip()
            if tag and tag not in out:
                out.append(tag)
    return out


def scalar(value: object) -> str | None:
    """A metadata value as text: strings, numbers and dates; None for the rest."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    return None
