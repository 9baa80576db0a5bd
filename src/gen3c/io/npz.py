"""``.npz`` archives read without unpickling, whole or one frame at a time.

A video sample's ``depth.npz`` holds every frame of the clip: (T, H, W) float16 is 12 GB for two
minutes of 1080p. :meth:`NpzReader.frames` reads one array along its first axis, a frame at a
time from the archive member (deflated or stored), so a job that uses 121 frames from frame
2000 on reads those and never holds the rest. :meth:`NpzReader.load` reads a small array whole.
"""

from __future__ import annotations

import math
import os
import tokenize
import weakref
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from gen3c.errors import Gen3cInputError, quoted_path
from gen3c.io.formats import require_numpy_file

#: What reading a damaged zip member raises: OSError, BadZipFile (a bad header or CRC), EOFError
#: and zlib.error (a deflate stream cut short or garbled), NotImplementedError (a compression
#: method or zip version Python does not read: a flipped bit there, or another zipper's Deflate64),
#: tokenize.TokenError (numpy's parser of a garbled .npy header). Word them with :func:`damage`.
ZIP_READ_ERRORS = (OSError, zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError, tokenize.TokenError)


#: What a damaged .npz's refusal advises.
SAVE_AGAIN = "it is cut short or damaged, save it again (numpy.savez) or copy it again"


def damage(exc: BaseException) -> str:
    """A :data:`ZIP_READ_ERRORS` error in words (a TokenError tells only where numpy's parser stopped)."""
    return "its .npy header is garbled" if isinstance(exc, tokenize.TokenError) else str(exc)


class NpzReader:
    """An open ``.npz`` file (use as a context manager).

    Args:
        name: how errors name the file (default: its path, quoted).
    Raises:
        Gen3cInputError: not an ``.npz`` file (a renamed PNG, text), or a damaged zip.
    """

    def __init__(self, path: str | os.PathLike, name: str | None = None) -> None:
        self.path = Path(path)
        self.name = name or quoted_path(self.path)
        require_numpy_file(self.path, self.name, archive=True)
        try:
            self._zip = zipfile.ZipFile(self.path)
        except ZIP_READ_ERRORS as exc:
            raise Gen3cInputError(f"{self.name} is not a readable .npz file ({damage(exc)}): {SAVE_AGAIN}") from None
        # numpy.load's naming: a member "x.npy" is the array "x".
        self._members = {m.removesuffix(".npy"): m for m in self._zip.namelist()}
        self._reading: weakref.WeakSet = weakref.WeakSet()  # the frame readers (generators) not yet finished

    @property
    def files(self) -> list[str]:
        """The names of the arrays it holds."""
        return list(self._members)

    def __enter__(self) -> NpzReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        # A frame reader left half-way (its reader refused a frame) holds its member open, and with
        # it the file, past the zip's close: closed here, not when the collector finds it.
        for reading in list(self._reading):
            reading.close()
        self._zip.close()

    def refuse_inverted(self, key: str) -> None:
        """Refuse ``key`` (world-to-camera poses, a name with ``w2c``) where the npz lacks it but holds
        the same name with ``c2w``: "save the array under 'w2c'" would have camera-to-world poses
        saved as world-to-camera ones. Nothing where that is not so."""
        inverse = key.replace("w2c", "c2w")
        if key not in self._members and inverse != key and inverse in self._members:
            # np.linalg.inv refuses 3×4 [R | t] rows (which camera.npz takes): they need their 4th row
            if self._matrix_size(inverse) == (3, 4):
                inverse_of = f"each 3×4 [R | t] of {inverse!r} with the row [0, 0, 0, 1] added, np.linalg.inv of the 4×4"
            else:
                inverse_of = f"np.linalg.inv({inverse})"
            raise Gen3cInputError(
                f"{self.name} has no key {key!r} but {inverse!r} (it holds {sorted(self._members)}): gen3c reads world-to-camera "
                f"poses, save their inverse ({inverse_of}) under {key!r}"
            )

    def _member(self, key: str) -> str:
        self.refuse_inverted(key)
        if key not in self._members:
            raise Gen3cInputError(
                f"{self.name} has no key {key!r} (it holds {sorted(self._members)}): save the array under {key!r}"
            )
        return self._members[key]

    def _matrix_size(self, key: str) -> tuple[int, ...] | None:
        """The last two sizes of the array ``key`` by its header; None where that cannot be read
        (the refusal that asks is about another thing: a damaged member is said when it is read)."""
        try:
            with self._zip.open(self._members[key]) as fp:
                header = read_npy_header(fp)
        except (ValueError, *ZIP_READ_ERRORS):
            return None
        return None if header is None else tuple(header[0][-2:])

    def load(self, key: str) -> np.ndarray:
        """The array ``key``, whole (numpy's own reader, pickles refused)."""
        member = self._member(key)
        try:
            with self._zip.open(member) as fp:
                return np.lib.format.read_array(fp, allow_pickle=False)
        except ValueError as exc:
            if "pickle" in str(exc).lower():
                raise self._objects(key) from None
            raise Gen3cInputError(f"{self.name} cannot be read ({exc})") from None
        except ZIP_READ_ERRORS as exc:
            raise Gen3cInputError(f"{self.name} is not a readable .npz file ({damage(exc)}): {SAVE_AGAIN}") from None

    def frames(self, key: str) -> NpzFrames:
        """The array ``key`` as :class:`NpzFrames`: its shape and dtype now, its frames when read."""
        member = self._member(key)
        try:
            with self._zip.open(member) as fp:
                header = read_npy_header(fp)
                offset = fp.tell()
        except ValueError as exc:
            raise Gen3cInputError(f"{self.name} cannot be read ({exc})") from None
        except ZIP_READ_ERRORS as exc:
            raise Gen3cInputError(f"{self.name} is not a readable .npz file ({damage(exc)}): {SAVE_AGAIN}") from None
        if header is None:
            return NpzFrames(self, key, array=self.load(key))
        shape, fortran_order, dtype = header
        if dtype.hasobject:
            raise self._objects(key)
        if fortran_order and len(shape) > 1:  # frames are not contiguous in the file: read it whole
            return NpzFrames(self, key, array=self.load(key))
        return NpzFrames(self, key, shape=shape, dtype=dtype, offset=offset)

    def _objects(self, key: str) -> Gen3cInputError:
        return Gen3cInputError(f"{self.name} key {key!r} holds Python objects, which are never unpickled: save a plain array")


class NpzFrames:
    """One array of an :class:`NpzReader`, read along its first axis.

    Attributes:
        shape, dtype, ndim: as the array's (``frames`` yields ``shape[1:]`` arrays of ``dtype``).
    """

    def __init__(
        self,
        reader: NpzReader,
        key: str,
        *,
        shape: tuple[int, ...] | None = None,
        dtype: np.dtype | None = None,
        offset: int = 0,
        array: np.ndarray | None = None,
    ) -> None:
        self._reader, self.key, self._offset, self._array = reader, key, offset, array
        self.shape = tuple(array.shape) if array is not None else tuple(shape)
        self.dtype = array.dtype if array is not None else dtype
        self._frame_shape = self.shape[1:]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def squeeze_channel(self) -> NpzFrames:
        """(N, 1, H, W) read as (N, H, W); any other shape as it is."""
        if self.ndim == 4 and self.shape[1] == 1:
            self.shape = (self.shape[0], *self.shape[2:])
        return self

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        """``array[start]``, ``array[start + 1]``, … ``array[stop − 1]``, each read when asked for.

        The zip's CRC-32 covers the whole member, so zipfile checks it only on a read to the
        member's end, and never for a stored member after a seek (Python ≥ 3.12): bytes damaged
        in storage or transfer inside the frames read can go unseen. Reading the whole member to
        check it would undo the frame reads; no user mistake (truncation, a renamed or half-written
        file, a bad header) gets past the zip's structure checks to here.

        Raises:
            Gen3cInputError: the member ends early or is damaged.
        """
        reading = self._frames(start, len(self) if stop is None else stop)
        self._reader._reading.add(reading)
        return reading

    def _frames(self, start: int, stop: int) -> Iterator[np.ndarray]:
        if self._array is not None:
            for i in range(start, stop):
                yield self._array[i].reshape(self.shape[1:])
            return
        nbytes = self.dtype.itemsize * math.prod(self._frame_shape)
        name = self._reader.name
        try:
            with self._reader._zip.open(self._reader._members[self.key]) as fp:
                fp.seek(self._offset + start * nbytes)  # a deflated member is inflated up to here, not kept
                for i in range(start, stop):
                    data = fp.read(nbytes)
                    if len(data) != nbytes:
                        raise Gen3cInputError(
                            f"{name} {self.key!r} ends at frame {i} of its {len(self)}: the file is truncated, save it again"
                        )
                    yield np.frombuffer(data, dtype=self.dtype).reshape(self.shape[1:])
        except ZIP_READ_ERRORS as exc:
            raise Gen3cInputError(f"{name} is not a readable .npz file ({damage(exc)}): {SAVE_AGAIN}") from None


def read_npy_header(fp) -> tuple[tuple[int, ...], bool, np.dtype] | None:
    """``(shape, fortran_order, dtype)`` from the header of the ``.npy`` stream ``fp``, which is
    left at the array's data; None for format 3.0 (unicode field names: rare), which numpy reads
    only whole. A garbled header raises numpy's ValueError (or :data:`ZIP_READ_ERRORS`)."""
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(fp)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(fp)
    return None


def load_npz_array(path: str | os.PathLike, key: str, name: str | None = None) -> np.ndarray:
    """One array of an ``.npz`` file, whole, never unpickling objects; clear errors for the rest."""
    with NpzReader(path, name) as npz:
        return npz.load(key)
