from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from checkpoint_factories import (
    WritesOnLoad,
    archive_with_entries,
    save,
    script,
    truncated_copy,
    zip_bomb,
)

from evaluator.checkpoint import ArchiveLimits, CheckpointRejected, check_archive


def test_an_archive_written_by_torch_jit_save_passes(honest_archive: Path) -> None:
    check_archive(honest_archive)


def test_a_truncated_archive_is_refused(honest_archive: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointRejected, match="not a valid zip archive"):
        check_archive(truncated_copy(honest_archive, tmp_path / "cut.pt"))


def test_a_file_that_is_not_a_zip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(b"\x80\x02not a zip at all")
    with pytest.raises(CheckpointRejected, match="not a valid zip archive"):
        check_archive(path)


def test_a_corrupted_entry_is_refused(honest_archive: Path, tmp_path: Path) -> None:
    data = bytearray(honest_archive.read_bytes())
    with zipfile.ZipFile(honest_archive) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith("data.pkl"))
    # Flip a byte inside the stored entry's data (past the local header and its extra field,
    # which torch uses for alignment padding): its CRC no longer matches.
    local = info.header_offset
    name_len = int.from_bytes(data[local + 26 : local + 28], "little")
    extra_len = int.from_bytes(data[local + 28 : local + 30], "little")
    data[local + 30 + name_len + extra_len + 5] ^= 0xFF
    path = tmp_path / "corrupt.pt"
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointRejected, match=r"Bad CRC-32 for file .*data.pkl"):
        check_archive(path)


def test_a_zip_bomb_is_refused_for_its_expansion_ratio(tmp_path: Path) -> None:
    with pytest.raises(CheckpointRejected, match=r"expands \d+-fold"):
        check_archive(zip_bomb(tmp_path / "bomb.pt"))


def test_an_archive_expanding_past_the_total_is_refused(honest_archive: Path) -> None:
    with pytest.raises(CheckpointRejected, match="expands to more than 100 bytes"):
        check_archive(honest_archive, ArchiveLimits(max_total_bytes=100))


def test_too_many_entries_are_refused(honest_archive: Path) -> None:
    with pytest.raises(CheckpointRejected, match="entries, more than the 3 allowed"):
        check_archive(honest_archive, ArchiveLimits(max_entries=3))


def test_an_archive_over_the_byte_cap_is_refused(honest_archive: Path) -> None:
    with pytest.raises(CheckpointRejected, match="more than the 10 allowed"):
        check_archive(honest_archive, ArchiveLimits(max_archive_bytes=10))


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("/m/data.pkl", "absolute path"),
        ("m/../../etc/cron.d/x", "'..' path component"),
        ("m\\..\\x", "backslash"),
    ],
)
def test_entry_paths_escaping_the_archive_are_refused(
    tmp_path: Path, name: str, reason: str
) -> None:
    path = archive_with_entries(
        tmp_path / "bad.pt", {"m/data.pkl": b"x", "m/constants.pkl": b"x", name: b"x"}
    )
    with pytest.raises(CheckpointRejected, match=reason):
        check_archive(path)


def test_a_zip_that_is_not_torchscript_is_refused(tmp_path: Path) -> None:
    path = archive_with_entries(tmp_path / "plain.zip", {"a/readme.txt": b"hello"})
    with pytest.raises(CheckpointRejected, match=r"no a/data.pkl"):
        check_archive(path)


def test_compressed_tensor_data_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "deflated.pt"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in ("m/data.pkl", "m/constants.pkl", "m/data/0"):
            archive.writestr(name, b"0" * 100)
    with pytest.raises(CheckpointRejected, match="holds tensor data but is compressed"):
        check_archive(path)


def test_a_model_calling_torch_save_is_refused_by_the_code_scan(tmp_path: Path) -> None:
    archive = save(script(WritesOnLoad(str(tmp_path / "x"))), tmp_path / "writer.pt")
    with pytest.raises(CheckpointRejected, match=r"calls torch.save \(writer/code/__torch__"):
        check_archive(archive)


def test_the_code_scan_can_be_turned_off(tmp_path: Path) -> None:
    archive = save(script(WritesOnLoad(str(tmp_path / "x"))), tmp_path / "writer.pt")
    check_archive(archive, scan_code=False)


def test_many_small_entries_expanding_together_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "many.pt"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("m/data.pkl", b"x", compress_type=zipfile.ZIP_STORED)
        archive.writestr("m/constants.pkl", b"x", compress_type=zipfile.ZIP_STORED)
        for i in range(200):
            archive.writestr(f"m/code/part{i}.py", b"#" * (60 << 10))
    with pytest.raises(CheckpointRejected, match=r"expands \d+-fold overall"):
        check_archive(path)
