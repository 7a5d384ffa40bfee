"""A training folder laid out one sub-folder per person (``root/<person>/...``, as ``saswap train`` reads it) serves
the face parser's and the tone harmoniser's recipes too, and their held-out split keeps each person on one side."""

from __future__ import annotations

from pathlib import Path

import pytest

from saswap.training.parsing_data import source_files, split_files


def _person_folders(root: Path, people: int, each: int) -> list[Path]:
    files = []
    for p in range(people):
        for k in range(each):
            path = root / f"person{p:02d}" / f"{k}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x")
            files.append(path)
    return files


def test_source_files_reads_person_folders_and_leaves_hidden_ones_out(tmp_path):
    _person_folders(tmp_path, 2, 2)
    (tmp_path / "loose.mp4").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("not a photo")
    (tmp_path / ".saswap-cache").mkdir()
    (tmp_path / ".saswap-cache" / "crop.png").write_bytes(b"x")
    (tmp_path / "person00" / ".thumbs").mkdir()
    (tmp_path / "person00" / ".thumbs" / "0.jpg").write_bytes(b"x")
    (tmp_path / "folder.jpg").mkdir()  # a folder with a photo's name is no photo
    found = [p.relative_to(tmp_path).as_posix() for p in source_files([tmp_path])]
    assert found == ["loose.mp4", "person00/0.jpg", "person00/1.jpg", "person01/0.jpg", "person01/1.jpg"]


def test_person_folders_are_held_out_whole(tmp_path, caplog):
    files = _person_folders(tmp_path, 16, 3)
    with caplog.at_level("INFO", logger="saswap.training.parsing_data"):
        train, held = split_files(files, roots=[tmp_path])
    person = {f: f.parent.name for f in files}
    held_people = {person[f] for f in held}
    assert held and train and set(train) | set(held) == set(files)
    assert not held_people & {person[f] for f in train}  # nobody on both sides
    assert len(held) == 3 * len(held_people) and len(held_people) <= 5
    assert "whole person folders" in caplog.text and all(name in caplog.text for name in held_people)
    # the same on every run, and a person keeps their side when others are added
    assert split_files(list(reversed(files)), roots=[tmp_path]) == (train[::-1], held[::-1])
    more = files + [tmp_path / "person99" / "0.jpg"]
    more_train, more_held = split_files(more, roots=[tmp_path])
    assert set(held) <= set(more_held) and set(train) <= set(more_train)
    # file by file (no roots given), the same people are split across both sides
    flat_train, flat_held = split_files(files)
    assert {person[f] for f in flat_held} & {person[f] for f in flat_train}


def test_a_flat_folder_splits_as_before_and_one_person_folder_falls_back_to_files(tmp_path, caplog):
    from saswap.training.parsing_data import HELDOUT_FRACTION, _name_hash

    flat = [tmp_path / f"photo{i}.jpg" for i in range(12)]
    # the rule files were always split by: the SHA-1 of each name, about one in eight
    rule = {f for f in flat if _name_hash(f) % HELDOUT_FRACTION == 0} or {min(flat, key=_name_hash)}
    for roots in ([tmp_path], None):
        train, held = split_files(flat, roots=roots)
        assert set(held) == rule and set(train) == set(flat) - rule
    one = _person_folders(tmp_path / "solo", 1, 9)
    with caplog.at_level("INFO", logger="saswap.training.parsing_data"):
        train, held = split_files(one, roots=[tmp_path / "solo"])
    assert train and held and "one person folder only, so a person may land on both sides" in caplog.text
    # one person folder and a loose photo: not a split by person (one side would be a single photo)
    for loose in ("a.jpg", "b.jpg", "c.jpg", "e.jpg", "cover.jpg"):
        (tmp_path / "solo" / loose).write_bytes(b"x")
        train, held = split_files([*one, tmp_path / "solo" / loose], roots=[tmp_path / "solo"])
        assert len(train) >= len(held), (loose, len(train), len(held))


def test_the_smallest_person_is_held_out_when_no_name_hashes_to_the_held_out_side(tmp_path):
    from saswap.training.parsing_data import HELDOUT_FRACTION, _name_hash

    # two people whose names hash off the held-out side, the bigger one first by hash (the old pick held it out)
    names = sorted([n for n in (f"p{i}" for i in range(200)) if _name_hash(Path(n)) % HELDOUT_FRACTION][:2],
                   key=lambda n: _name_hash(Path(n)))  # fmt: skip
    big = [tmp_path / names[0] / f"{k}.jpg" for k in range(30)]
    small = [tmp_path / names[1] / f"{k}.jpg" for k in range(3)]
    train, held = split_files(big + small, roots=[tmp_path])
    assert held == small and train == big


def test_the_parser_data_splits_a_person_layout_by_person(tmp_path, monkeypatch):
    """The data module's split receives its folders, so a person's files stay on one side of it."""
    import saswap.training.parsing_data as parsing_data

    files = _person_folders(tmp_path, 16, 2)
    monkeypatch.setattr(parsing_data, "build_parsing_cache", lambda files, *args, **kwargs: list(files))
    monkeypatch.setattr(parsing_data, "load_records", lambda caches, files: [Path(f) for f in files])
    train = parsing_data.face_records([tmp_path], tmp_path / "cache", 64, 1, held_out=False)
    held = parsing_data.face_records([tmp_path], tmp_path / "cache", 64, 1, held_out=True)
    assert held and set(train) | set(held) == set(files)
    assert not {f.parent.name for f in held} & {f.parent.name for f in train}


@pytest.mark.parametrize("module", ["saswap.training.parsing_data", "saswap.training.harmonize_data"])
def test_both_recipes_read_the_person_layout(tmp_path, module):
    import importlib

    files = _person_folders(tmp_path, 2, 1)
    cls = {"saswap.training.parsing_data": "FaceParsingDataModule",
           "saswap.training.harmonize_data": "ToneHarmonizationDataModule"}[module]  # fmt: skip
    data = getattr(importlib.import_module(module), cls)(root=str(tmp_path))
    assert data.files() == files
