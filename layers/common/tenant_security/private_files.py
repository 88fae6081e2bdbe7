"""Files only their owner may read: the CLI's session and the local cloud's bootstrap.json.

Both hold a secret (an access token, a one-time password), so a write never goes through a
planted symlink and never keeps a wider mode an earlier file had: the content goes to a new inode
(``mkstemp``: ``O_CREAT|O_EXCL|O_NOFOLLOW``), made 0600 on its handle before a byte is written,
flushed, then renamed over the final name (``os.replace`` replaces a symlink there, it does not
follow it). The directory must be the user's own, or someone else could swap the file between
writes and reads. A read refuses a symlink and a file that is not the user's own or that others
can read, checked on the open handle so the file cannot change between check and read.

POSIX only (the CLI and the local cloud run on Linux and macOS).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from enum import IntFlag
from pathlib import Path

FILE_MODE = 0o600
DIRECTORY_MODE = 0o700
GROUP_AND_OTHER = 0o077


class DirectoryPolicy(IntFlag):
    """Which permission bits a directory that holds a private file must not have."""

    # ~/.config/tenant-security: nobody but its owner may add, rename or remove files in it.
    OWNER_ONLY = stat.S_IWGRP | stat.S_IWOTH
    # .localcloud, made by `make local` with the user's umask (a shared group is common there).
    NOT_WORLD_WRITABLE = stat.S_IWOTH


class UnsafeFile(Exception):
    """A private file or its directory could be read or replaced by someone else: not used."""


def private_directory(directory: Path, policy: DirectoryPolicy) -> Path:
    """``directory``, made 0700 when missing; :class:`UnsafeFile` unless it is the user's own
    and has none of ``policy``'s permission bits."""
    directory.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    info = directory.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeFile(f"{directory} is not a directory")
    if info.st_uid != os.getuid():
        raise UnsafeFile(f"{directory} belongs to another user (uid {info.st_uid}): not writing there")
    if info.st_mode & policy:
        raise UnsafeFile(
            f"{directory} is writable by others (mode {stat.S_IMODE(info.st_mode):o}): not writing there; "
            f"`chmod go-w {directory}` or choose another place"
        )
    return directory


def write_private_file(path: Path, text: str, policy: DirectoryPolicy) -> None:
    """Replace ``path`` with ``text``, readable by its owner only (0600), never through a symlink."""
    directory = private_directory(path.parent, policy)
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp already creates 0600; set it on the handle anyway, so the mode never depends
        # on how the file came to be.
        os.fchmod(descriptor, FILE_MODE)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def read_private_file(path: Path) -> str:
    """The text of ``path``; :class:`UnsafeFile` for a symlink, someone else's file, or a file with
    group or other permissions. ``FileNotFoundError`` (an ``OSError``) when there is none."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeFile(f"{path} is a symlink: not reading it") from None
        raise
    with os.fdopen(descriptor, "r", encoding="utf-8") as source:
        info = os.fstat(source.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFile(f"{path} is not a regular file: not reading it")
        if info.st_uid != os.getuid():
            raise UnsafeFile(f"{path} belongs to another user (uid {info.st_uid}): not reading it")
        if info.st_mode & GROUP_AND_OTHER:
            raise UnsafeFile(
                f"{path} is readable or writable by others (mode {stat.S_IMODE(info.st_mode):o}): "
                f"not reading it; `chmod 600 {path}` if it is yours"
            )
        return source.read()
