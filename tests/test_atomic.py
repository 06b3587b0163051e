import pytest

from edgefer.atomic import atomic_dir, atomic_file


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.npz"
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_failed_dir_keeps_old_version(tmp_path):
    target = tmp_path / "bundle"
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("v1")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "a").write_text("v2")
        raise RuntimeError
    assert (target / "a").read_text() == "v1" and [p.name for p in tmp_path.iterdir()] == ["bundle"]
    with atomic_dir(target) as tmp:
        (tmp / "b").write_text("v3")
    assert [p.name for p in target.iterdir()] == ["b"]
