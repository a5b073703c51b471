"""Checks on an uploaded TorchScript archive that run before anything loads it.

`torch.jit.load` runs the participant's code and its zip reader has had memory bugs, so the
archive is walked here with Python's `zipfile` first: a file that is not a plain, bounded zip in
the shape `torch.jit.save` writes never reaches the loader.
"""

from __future__ import annotations

import re
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

_READ_CHUNK = 1 << 20
_MAX_CODE_BYTES = 64 << 20

# TorchScript calls that read or write files or reach other processes, as they appear in the
# archive's serialized code. A courtesy (the plain case gets its file and line at upload), not a
# defence: text is easily written past it (`torch.\` and a newline). The operator allow-list on
# the loaded graph (allowlist.py) and the sandbox are what stop such calls.
_FORBIDDEN_CODE = re.compile(
    r"\b(?:torch|aten)\s*\.\s*(?P<op>save|from_file)\b"
    r"|\b(?P<other>load_tensor|rpc_sync|rpc_async|rpc_remote|c10d|_c10d_functional)\b"
)


class ArchiveError(Exception):
    """The archive is refused; the message says why."""


@dataclass(frozen=True)
class ArchiveLimits:
    """Bounds on what an uploaded archive may hold.

    The defaults fit the largest reference model (PLE, ~15 M parameters, ~60 MB) many times over
    and stop decompression bombs: tensor data is stored uncompressed by `torch.jit.save`, so only
    the small `code/` entries may be deflated at all.
    """

    max_archive_bytes: int = 2 << 30
    max_entries: int = 10_000
    max_total_bytes: int = 4 << 30
    max_ratio: float = 100.0
    # Tiny entries (a 300-byte source file) can compress well without being a bomb.
    ratio_min_bytes: int = 64 << 10


def check_archive_file(
    path: Path, limits: ArchiveLimits | None = None, *, scan_code: bool = True
) -> list[str]:
    """Validate the archive at `path`; return its entry names or raise ArchiveError.

    With `scan_code`, the serialized TorchScript is also searched for calls that touch files
    (torch.save, torch.from_file) or other processes, so such a model is refused up front
    with a precise reason instead of failing inside the sandbox.
    """
    limits = limits or ArchiveLimits()
    if not path.is_file():
        raise ArchiveError(f"{path.name}: not a file")
    size = path.stat().st_size
    if size > limits.max_archive_bytes:
        raise ArchiveError(
            f"archive is {size} bytes, more than the {limits.max_archive_bytes} allowed"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            names = _check_entries(infos, limits, size)
            _check_contents(archive, infos)
            if scan_code:
                _scan_code(archive, infos)
    except zipfile.BadZipFile as exc:
        raise ArchiveError(
            f"not a valid zip archive (truncated or corrupt?): {exc}; a checkpoint is the file "
            "torch.jit.save writes"
        ) from exc
    except (OSError, EOFError, NotImplementedError, ValueError) as exc:
        raise ArchiveError(f"the archive cannot be read: {exc}") from exc
    return names


def _check_entries(
    infos: list[zipfile.ZipInfo], limits: ArchiveLimits, archive_bytes: int
) -> list[str]:
    if not infos:
        raise ArchiveError("the archive is empty")
    if len(infos) > limits.max_entries:
        raise ArchiveError(
            f"the archive has {len(infos)} entries, more than the {limits.max_entries} allowed"
        )
    names: list[str] = []
    seen: set[str] = set()
    total = 0
    for info in infos:
        name = info.filename
        _check_name(name)
        if name in seen:
            raise ArchiveError(f"entry {name!r} appears twice")
        seen.add(name)
        names.append(name)
        if info.flag_bits & 0x1:
            raise ArchiveError(f"entry {name!r} is encrypted")
        mode = info.external_attr >> 16
        if mode and stat.S_ISLNK(mode):
            raise ArchiveError(f"entry {name!r} is a symbolic link")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ArchiveError(
                f"entry {name!r} uses compression method {info.compress_type}; "
                "only stored and deflated entries are accepted"
            )
        total += info.file_size
        if total > limits.max_total_bytes:
            raise ArchiveError(f"the archive expands to more than {limits.max_total_bytes} bytes")
        if info.file_size >= limits.ratio_min_bytes:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > limits.max_ratio:
                raise ArchiveError(
                    f"entry {name!r} expands {ratio:.0f}-fold ({info.compress_size} to "
                    f"{info.file_size} bytes), more than the {limits.max_ratio:.0f} allowed"
                )
        parts = PurePosixPath(name).parts
        if len(parts) > 2 and parts[1] == "data" and info.compress_type != zipfile.ZIP_STORED:
            raise ArchiveError(
                f"entry {name!r} holds tensor data but is compressed; torch.jit.save stores "
                "tensor data uncompressed"
            )
    # Many small entries, each under the per-entry threshold, can make a bomb together.
    if total >= limits.ratio_min_bytes and total > limits.max_ratio * max(archive_bytes, 1):
        raise ArchiveError(
            f"the archive expands {total / max(archive_bytes, 1):.0f}-fold overall "
            f"({archive_bytes} to {total} bytes), more than the {limits.max_ratio:.0f} allowed"
        )
    _check_layout(names)
    return names


def _check_name(name: str) -> None:
    if not name or "\x00" in name:
        raise ArchiveError(f"entry name {name!r} is empty or holds a NUL byte")
    if "\\" in name:
        raise ArchiveError(f"entry {name!r} holds a backslash")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"entry {name!r} has an absolute path")
    if ".." in PurePosixPath(name).parts:
        raise ArchiveError(f"entry {name!r} has a '..' path component")


def _check_layout(names: list[str]) -> None:
    """TorchScript archives hold every entry under one top folder, with `data.pkl` in it."""
    tops = {PurePosixPath(name).parts[0] for name in names}
    if len(tops) != 1 or any("/" not in name for name in names):
        raise ArchiveError(
            "not a TorchScript archive: entries must all sit in one top-level folder, "
            f"found {sorted(tops)[:5]}"
        )
    top = next(iter(tops))
    for required in ("data.pkl", "constants.pkl"):
        if f"{top}/{required}" not in names:
            raise ArchiveError(
                f"not a TorchScript archive: no {top}/{required} (write it with torch.jit.save)"
            )


def _check_contents(archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo]) -> None:
    """Read every entry once so that truncation or a bad CRC is found here, not in torch.

    zipfile stops at the declared size, so a lying header cannot make this read more than the
    total already bounded above.
    """
    for info in infos:
        if info.is_dir():
            continue
        with archive.open(info) as entry:
            while entry.read(_READ_CHUNK):
                pass


def _scan_code(archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo]) -> None:
    budget = _MAX_CODE_BYTES
    for info in infos:
        parts = PurePosixPath(info.filename).parts
        if len(parts) < 3 or parts[1] != "code" or not info.filename.endswith(".py"):
            continue
        budget -= info.file_size
        if budget < 0:
            raise ArchiveError(f"the archive holds more than {_MAX_CODE_BYTES} bytes of code")
        text = archive.read(info).decode("utf-8", "replace")
        match = _FORBIDDEN_CODE.search(text)
        if match:
            line = text.count("\n", 0, match.start()) + 1
            call = match.group(0).replace(" ", "")
            raise ArchiveError(
                f"the model calls {call} ({info.filename}, line {line}); a checkpoint may not "
                "read or write files or talk to other processes"
            )
