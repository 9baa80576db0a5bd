"""Text files users write, read alike, whatever tool or editor wrote them.

Every text file a user hands gen3c (a camera file, an ``--intrinsics`` file, a COLMAP
``cameras.txt``, a batch manifest, a training config, a depth map's JSON record) is decoded by
:func:`decode_text`: UTF-8 with a byte order mark (Windows Notepad's, Excel's CSV) or without, or
UTF-16 / UTF-32 with one (PowerShell 5's ``>``, Notepad's "Unicode"); Windows (CRLF) and old Mac
(CR) line ends read as ``"\\n"``. Bytes that are no such text (an image or an archive given by
mistake, a file saved in a legacy code page) are one line naming the file (:func:`not_text`).
"""

from __future__ import annotations

import codecs

from gen3c.errors import Gen3cInputError

#: Byte order marks and the codec that reads the text after them (UTF-32's first: its
#: little-endian mark starts with UTF-16's).
_MARKS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

#: The bytes of a text file in an 8-bit code page: all but the control characters (tab, line ends
#: and form feed aside).
_PLAIN_BYTES = bytes(b for b in range(256) if b >= 0x20 and b != 0x7F or b in b"\t\n\r\f")


def text_encoding(head: bytes) -> str:
    """The codec of a text file starting with ``head``: its byte order mark's, else UTF-8 (with
    its mark dropped where it has one)."""
    return next((codec for mark, codec in _MARKS if head.startswith(mark)), "utf-8-sig")


def decode_text(content: bytes) -> str:
    """A text file's bytes as text, without its byte order mark, its line ends ``"\\n"`` (as
    ``Path.read_text`` reads them).

    Raises:
        UnicodeDecodeError: bytes that are no text of :func:`text_encoding`'s codec.
    """
    return content.decode(text_encoding(content)).replace("\r\n", "\n").replace("\r", "\n")


def decode_head(head: bytes, errors: str = "strict") -> str:
    """A text file's first bytes as text, without its byte order mark; a character cut at their
    end is left out (no error: the rest of it is in the bytes not read).

    Raises:
        UnicodeDecodeError: with ``errors="strict"``, bytes that are no text.
    """
    return codecs.getincrementaldecoder(text_encoding(head))(errors).decode(head, final=False)


def user_text(content: bytes, name: str, fix: str, kind: str = "text") -> str:
    """:func:`decode_text` of the file ``name`` (``"config 'c.toml'"``), whose bytes that are no
    text are :func:`not_text`'s one line (``kind``: what the file should be; ``fix``: what to pass
    instead)."""
    try:
        return decode_text(content)
    except UnicodeDecodeError as exc:
        raise not_text(content, exc, name, fix, kind) from None


def not_text(content: bytes, exc: UnicodeDecodeError, name: str, fix: str, kind: str = "text") -> Gen3cInputError:
    """The one-line error for the file ``name`` whose bytes ``content`` failed to decode
    (``exc``): what it is where its first bytes tell ("… is a PNG image, not ``kind``: ``fix``"),
    else the line of its first byte no text holds ("… is not UTF-8 text (line 3 holds the byte
    0xe9): save it as UTF-8"), as a file saved in a Windows code page has."""
    from gen3c.io.formats import describe_head

    what = describe_head(content[:64])
    # A byte of a Windows code page (é as 0xe9) among the first is no binary where no control
    # character is among them (binary formats hold NULs and other bytes below 0x20)
    legacy = what == "of an unknown binary format" and not content[:4096].translate(None, _PLAIN_BYTES)
    if what not in ("text", "JSON text") and not legacy:
        return Gen3cInputError(f"{name} is {what}, not {kind}: {fix}")
    codec = text_encoding(content)
    before = content[: exc.start].decode(codec, errors="replace")
    line = before.replace("\r\n", "\n").replace("\r", "\n").count("\n") + 1
    written = "UTF-8" if codec == "utf-8-sig" else codec.upper()
    return Gen3cInputError(f"{name} is not {written} text (line {line} holds the byte 0x{content[exc.start]:02x}): save it as UTF-8")


__all__ = ["decode_head", "decode_text", "not_text", "text_encoding", "user_text"]
