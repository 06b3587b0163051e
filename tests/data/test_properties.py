"""Property tests of the data loaders: whatever bytes, rows or folders they are given, they return
a well-formed FerData or raise one DataError whose message is one line naming the file -- never
another exception.

The Kaggle CSV is also checked against an independent oracle (csv module + a strict tokenizer),
so a row that is read *wrongly* (a stray '+' read as a 0 pixel) fails too, not only a crash.

EDGEFER_PROPERTY_EXAMPLES=1000 python -m pytest tests/data/test_properties.py runs a longer search.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edgefer.data import load_fer
from edgefer.data.dataset import KAGGLE_SPLITS, FerData, Skipped
from edgefer.errors import DataError, EdgeferError, shown
from edgefer.labels import FER7

EXAMPLES = int(os.environ.get("EDGEFER_PROPERTY_EXAMPLES", "60"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
PIXELS = 48 * 48


# ---------------------------------------------------------------------------------------------
# What every outcome must look like


def assert_one_line(message: str) -> None:
    assert message and message.splitlines() == [message], repr(message)  # no line break of any kind


def assert_valid(ds: FerData) -> None:
    n = len(ds.labels)
    assert n > 0
    assert ds.images.dtype == np.uint8 and ds.images.shape == (n, 48, 48)
    assert ds.labels.dtype == np.int64 and ds.labels.shape == (n,)
    assert ds.labels.min() >= 0 and ds.labels.max() <= 6
    assert ds.split_codes.dtype == np.int64 and ds.split_codes.shape == (n,)
    assert len(set(ds.split_names)) == len(ds.split_names)
    assert set(ds.split_codes.tolist()) == set(range(len(ds.split_names)))  # no empty split
    assert ds.soft_labels is None
    counts = ds.counts()
    assert list(counts) == list(ds.split_names)
    assert sum(sum(c.values()) for c in counts.values()) == n
    for s in ds.skipped:
        assert isinstance(s, Skipped)
        assert_one_line(s.where)
        assert_one_line(s.why)


def outcome(path: Path, skip_bad: bool):
    """('ok', FerData) or ('error', message); any other exception fails the test."""
    try:
        ds = load_fer(path, skip_bad=skip_bad)
    except DataError as exc:
        assert type(exc) is DataError
        msg = str(exc)
        assert_one_line(msg)
        assert msg.startswith(str(path)), msg  # names the file (tmp paths are plain text)
        return "error", msg
    assert_valid(ds)
    return "ok", ds


# ---------------------------------------------------------------------------------------------
# Kaggle CSV: an independent reading of the format, to compare against

ASCII_SPACE = "[ \t\n\r\x0b\x0c]+"


class Bad(Exception):
    pass


def oracle_pixels(text: str) -> np.ndarray:
    tokens = [t for t in re.split(ASCII_SPACE, text) if t]
    if len(tokens) != PIXELS or not all(re.fullmatch("[0-9]+", t) for t in tokens):
        raise Bad
    values = [int(t) for t in tokens]
    if max(values) > 255:
        raise Bad
    return np.array(values, np.uint8).reshape(48, 48)


def oracle(text: str, skip_bad: bool):
    """('ok', images, labels, splits) or ('error',) for CSV text, per docs/DATA.md."""
    text = text.removeprefix("\ufeff")
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error:
        return ("error",)
    rows = [r for r in rows if r]
    if not rows:
        return ("error",)
    header = [h.strip().lower() for h in rows[0]]
    if any(header.count(c) != 1 for c in ("emotion", "pixels")) or header.count("usage") > 1:
        return ("error",)
    images, labels, splits = [], [], []
    for row in rows[1:]:
        try:
            if len(row) != len(header):
                raise Bad
            raw = row[header.index("emotion")].strip()
            if not re.fullmatch("0*[0-6]", raw, re.ASCII):
                raise Bad
            split = "all"
            if "usage" in header:
                split = row[header.index("usage")].strip()
                if split not in KAGGLE_SPLITS:
                    raise Bad
            image = oracle_pixels(row[header.index("pixels")])
        except Bad:
            if skip_bad:
                continue
            return ("error",)
        images.append(image)
        labels.append(int(raw))
        splits.append(split)
    if not images:
        return ("error",)
    return "ok", np.stack(images), np.array(labels), splits


# ---------------------------------------------------------------------------------------------
# Kaggle CSV: strategies

# Tokens that have broken (or could break) a pixel parser.
ODD_TOKENS = [
    "-",
    "+",
    "+5",
    "-0",
    "-1",
    "256",
    "1e3",
    "1.5",
    "0x1",
    "nan",
    "x",
    "",
    " ",
    "99999999999999999999",
    "\t",
    "١",
    "²",
    "1\xa02",
    "\x00",
    '"',
    ",",
    "\n",
]
HEADERS = [
    "emotion,pixels,Usage",
    "emotion,pixels",
    "Usage,pixels,emotion",
    " Emotion , PIXELS ,usage",
    '"emotion","pixels","Usage"',
    "emotion,pixels,Usage,extra",
    "emotion,pixels,usage,Usage",
    "emotion,emotion,pixels",
    "label,pixels,Usage",
    "pixels,emotion",
    "",
    "emotion;pixels;Usage",
]
ODD_LABELS = ["7", "-1", "", " 3 ", "03", "3.0", "²", "٣", "happy"]
ODD_USAGES = ["training", "Validation", " PublicTest ", ""]
EOLS = ["\n", "\r\n", "\r"]


@st.composite
def kaggle_rows(draw):
    """One row as a list of cells, mostly valid, sometimes mutated in one of many ways."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    tokens = [str(v) for v in rng.integers(0, 256, PIXELS)]
    label = draw(
        st.sampled_from([str(i) for i in range(7)])
        | st.sampled_from(ODD_LABELS)
        | st.text(max_size=4)
    )
    usage = draw(st.sampled_from(KAGGLE_SPLITS) | st.sampled_from(ODD_USAGES) | st.text(max_size=6))
    mutation = draw(
        st.sampled_from(["none"] * 4 + ["token", "drop", "add", "range", "sep", "cells"])
    )
    at = draw(st.integers(0, PIXELS - 1))
    if mutation == "token":
        tokens[at] = draw(st.sampled_from(ODD_TOKENS) | st.text(max_size=3))
    elif mutation == "drop":
        del tokens[at : at + draw(st.integers(1, 3))]
    elif mutation == "add":
        tokens += draw(st.lists(st.sampled_from(["0", "255", "7"]), min_size=1, max_size=2))
    elif mutation == "range":
        tokens[at] = str(draw(st.integers(256, 10**25) | st.integers(-(10**25), -1)))
    sep = " "
    if mutation == "sep":
        sep = draw(st.sampled_from(["  ", "\t", " \t", ", ", ";", "\xa0"]))
    cells = [label, sep.join(tokens), usage]
    if mutation == "cells":
        op = draw(st.sampled_from(["drop", "extra", "swap"]))
        if op == "drop":
            cells.pop(draw(st.integers(0, 2)))
        elif op == "extra":
            cells.append(draw(st.text(max_size=3)))
        else:
            cells[0], cells[2] = cells[2], cells[0]
    return cells


def render(cells: list[str], quote: bool) -> str:
    if quote:
        return ",".join('"' + c.replace('"', '""') + '"' for c in cells)
    return ",".join(cells)


@st.composite
def kaggle_texts(draw):
    header = draw(st.sampled_from(HEADERS) | st.text(max_size=20))
    rows = draw(st.lists(kaggle_rows(), min_size=0, max_size=4))
    # Rows in the header's column order when the header names them, so valid rows stay valid.
    names = [h.strip().strip('"').lower() for h in header.split(",")]
    if sorted(names) in (sorted(["emotion", "pixels", "usage"]), ["emotion", "pixels"]):
        order = {"emotion": 0, "pixels": 1, "usage": 2}
        rows = [[r[order[n]] for n in names] if len(r) == 3 else r for r in rows]
    quote = draw(st.booleans())
    lines = [header] + [render(r, quote) for r in rows]
    for _ in range(draw(st.integers(0, 2))):  # blank lines anywhere
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(["", "", " "])))
    eol = draw(st.sampled_from(EOLS))
    text = eol.join(lines) + draw(st.sampled_from([eol, ""]))
    if draw(st.booleans()):
        text = "\ufeff" + text
    return text


def write(tmp: Path, data: bytes, gz: bool) -> Path:
    path = tmp / ("fer.csv.gz" if gz else "fer.csv")
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


# ---------------------------------------------------------------------------------------------
# Kaggle CSV: properties


def good_text(n: int = 3, token: tuple[int, str] | None = None) -> str:
    """n valid rows; `token` = (index, text) replaces one pixel token of the last row."""
    rng = np.random.default_rng(n)
    rows = []
    for i in range(n):
        tokens = [str(v) for v in rng.integers(0, 256, PIXELS)]
        if token and i == n - 1:
            tokens[token[0]] = token[1]
        rows.append(f"{i % 7},{' '.join(tokens)},{KAGGLE_SPLITS[i % 3]}")
    return "\n".join(["emotion,pixels,Usage", *rows]) + "\n"


@SETTINGS
@given(text=kaggle_texts(), gz=st.booleans(), skip_bad=st.booleans())
@example(text="\ufeff" + good_text(), gz=False, skip_bad=False)  # Excel's byte-order mark
@example(text="\ufeff" + good_text(), gz=True, skip_bad=True)
@example(text=good_text(token=(5, "+")), gz=False, skip_bad=False)  # numpy read '+' as 0
@example(text=good_text(token=(PIXELS - 1, "-")), gz=True, skip_bad=True)
@example(text=good_text(token=(9, "١")), gz=False, skip_bad=False)
@example(text="Emotion,Pixels,usage\n" + good_text().split("\n", 1)[1], gz=False, skip_bad=False)
def test_csv_rows_read_exactly_as_the_format_says(text, gz, skip_bad):
    with tempfile.TemporaryDirectory() as tmp:
        path = write(Path(tmp), text.encode(), gz)
        got = outcome(path, skip_bad)
    want = oracle(text, skip_bad)
    assert got[0] == want[0], (got, want[0])
    if got[0] == "ok":
        ds = got[1]
        np.testing.assert_array_equal(ds.images, want[1])
        np.testing.assert_array_equal(ds.labels, want[2])
        assert [ds.split_names[c] for c in ds.split_codes] == want[3]
        if not skip_bad:
            assert ds.skipped == []


@st.composite
def damaged(draw, data: bytes):
    """`data` with a few bytes changed, cut short, or bytes inserted."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip" and out:
            out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
        elif op == "cut":
            del out[draw(st.integers(0, len(out))) :]
        else:
            at = draw(st.integers(0, len(out)))
            out[at:at] = draw(st.binary(min_size=1, max_size=8))
    return bytes(out)


GOOD_GZ = gzip.compress(good_text().encode(), mtime=0)


@SETTINGS
@given(data=damaged(GOOD_GZ), skip_bad=st.booleans())
@example(data=GOOD_GZ[:10] + b"\xff" * 40, skip_bad=False)  # zlib.error: invalid block type
@example(data=GOOD_GZ[: len(GOOD_GZ) // 2], skip_bad=True)  # EOFError
@example(data=GOOD_GZ[:-8] + bytes(8), skip_bad=False)  # BadGzipFile: CRC check failed
def test_damaged_gzip_is_a_valid_result_or_one_data_error(data, skip_bad):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fer.csv.gz"
        path.write_bytes(data)
        outcome(path, skip_bad)


@SETTINGS
@given(data=damaged(good_text().encode()) | st.binary(max_size=300), skip_bad=st.booleans())
@example(data=b"\xff\xfeemotion,pixels\n", skip_bad=False)  # not UTF-8
@example(data=b'emotion,pixels\n0,"' + b"1 " * 70000 + b'"\n', skip_bad=False)  # field > csv limit
def test_arbitrary_bytes_are_a_valid_result_or_one_data_error(data, skip_bad):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fer.csv"
        path.write_bytes(data)
        got = outcome(path, skip_bad)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        assert got[0] == "error"
        return
    want = oracle(text, skip_bad)
    assert got[0] == want[0]
    if got[0] == "ok":
        np.testing.assert_array_equal(got[1].images, want[1])


# ---------------------------------------------------------------------------------------------
# Image folders

VALID_CLASS_NAMES = list(FER7) + [str(i) for i in range(7)] + ["Happy", " SAD ", "03"]
ODD_CLASS_NAMES = [
    "7",
    "happiness",
    "²",
    "٣",
    "３",
    "-1",
    "happy\nface",
    "sad\r",
    "\t",
    "0x3",
    "disgusted",
    "...",
]
NAME_CHARS = st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",))
SUFFIXES = [".png", ".jpg", ".PNG", ".jpeg", ".bmp", ".tiff", ".webp", ".pgm", ".txt", ""]


FS_NAMES = st.text(NAME_CHARS, min_size=1, max_size=10).filter(lambda n: n not in (".", ".."))


def encoded_image(draw) -> bytes:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    h, w = draw(st.integers(1, 70)), draw(st.integers(1, 70))
    kind = draw(st.sampled_from(["gray", "bgr", "bgra", "gray16", "float"]))
    img = {
        "gray": lambda: rng.integers(0, 256, (h, w), dtype=np.uint8),
        "bgr": lambda: rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        "bgra": lambda: rng.integers(0, 256, (h, w, 4), dtype=np.uint8),
        "gray16": lambda: rng.integers(0, 65536, (h, w), dtype=np.uint16),
        "float": lambda: rng.random((h, w), dtype=np.float32),
    }[kind]()
    ext = draw(
        st.sampled_from(
            {
                "gray": [".png", ".jpg", ".bmp", ".tiff"],
                "bgr": [".png", ".jpg", ".bmp", ".tiff"],
                "bgra": [".png", ".tiff"],
                "gray16": [".png", ".tiff"],
                "float": [".tiff"],
            }[kind]
        )
    )
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


@st.composite
def file_contents(draw) -> bytes:
    kind = draw(st.sampled_from(["image", "image", "empty", "random", "cut", "flipped"]))
    if kind == "empty":
        return b""
    if kind == "random":
        return draw(st.binary(min_size=1, max_size=64))
    data = encoded_image(draw)
    if kind == "cut":
        return data[: draw(st.integers(0, len(data) - 1))]
    if kind == "flipped":
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
        return bytes(out)
    return data


@st.composite
def class_folder(draw):
    name = draw(
        st.sampled_from(VALID_CLASS_NAMES)
        | st.sampled_from(ODD_CLASS_NAMES)
        | st.builds(lambda n: "." + n, st.sampled_from(FER7))
    )
    files = draw(st.lists(st.tuples(st.sampled_from(SUFFIXES), file_contents()), max_size=3))
    files = [
        (f"{i}{draw(st.sampled_from(['', 'x', ' ', '.', 'é']))}{sfx}", data)
        for i, (sfx, data) in enumerate(files)
    ]
    if draw(st.integers(0, 9)) == 0:
        files.append((draw(FS_NAMES), draw(file_contents())))
    return name, files


@st.composite
def folder_trees(draw):
    """{split or None: [(class folder name, [(file name, bytes)])]}: None = <root>/<class>/."""
    classes = lambda: draw(
        st.lists(class_folder(), min_size=0, max_size=3, unique_by=lambda c: c[0])
    )
    if draw(st.booleans()):
        return {None: classes()}
    splits = draw(
        st.lists(
            st.sampled_from(["train", "test", "val", "PublicTest", ".git"]) | FS_NAMES,
            min_size=1,
            max_size=3,
            unique=True,
        )
    )
    return {s: classes() for s in splits}


def make_tree(root: Path, tree) -> None:
    for split, classes in tree.items():
        base = root if split is None else root / split
        base.mkdir(parents=True, exist_ok=True)
        for cname, files in classes:
            cdir = base / cname
            cdir.mkdir(exist_ok=True)
            for fname, data in files:
                (cdir / fname).write_bytes(data)


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}


def class_of(name: str):
    key = name.strip().lower()
    if key in FER7:
        return FER7.index(key)
    if re.fullmatch("0*[0-6]", key, re.ASCII):
        return int(key)
    return None


def expected_layout(root: Path):
    """{(split, class id): [candidate image files]} per docs/DATA.md, or None for an error."""
    dirs = lambda p: sorted(d for d in p.iterdir() if d.is_dir() and not d.name.startswith("."))
    top = dirs(root)
    if not top:
        return None
    split_dirs = (
        {"all": root}
        if all(class_of(d.name) is not None for d in top)
        else {d.name: d for d in top}
    )
    layout = {}
    for split, sdir in split_dirs.items():
        ids = [class_of(c.name) for c in dirs(sdir)]
        if not ids or None in ids or len(set(ids)) != len(ids):
            return None
        for cdir, cid in zip(dirs(sdir), ids):
            files = [
                f
                for f in cdir.iterdir()
                if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".")
            ]
            if not files:
                return None
            layout[split, cid] = files
    per_split = {}
    for split, cid in layout:
        per_split.setdefault(split, set()).add(cid)
    if len({frozenset(c) for c in per_split.values()}) > 1:
        return None
    return layout


def huge_bmp() -> bytes:
    """A BMP whose header claims a height of 10**8: cv2.imdecode raises cv2.error for it."""
    data = bytearray(cv2.imencode(".bmp", np.zeros((4, 4), np.uint8))[1].tobytes())
    data[22:26] = (10**8).to_bytes(4, "little")
    return bytes(data)


@SETTINGS
@given(tree=folder_trees(), skip_bad=st.booleans())
@example(tree={None: [("happy", [("big.bmp", huge_bmp())])]}, skip_bad=False)
@example(tree={"train": [("²", [])]}, skip_bad=False)  # '²'.isdigit(), but int('²') raises
def test_image_folders_give_a_valid_result_or_one_data_error(tree, skip_bad):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "fer"
        root.mkdir()
        make_tree(root, tree)
        want = expected_layout(root)
        got = outcome(root, skip_bad)
    if want is None:
        assert got[0] == "error", "a layout error went unnoticed"
        return
    if got[0] == "error":  # only unreadable images may stop a well-formed tree
        if skip_bad:
            assert got[1] == f"{root}: no readable images"
            return
        assert any(
            got[1].startswith(f"{shown(f, None)}: ") for files in want.values() for f in files
        ), got[1]
        return
    ds = got[1]
    counts = ds.counts()
    skipped = {s.where for s in ds.skipped}
    for (split, cid), files in want.items():
        assert counts[split][FER7[cid]] + sum(shown(f, None) in skipped for f in files) == len(
            files
        )
    assert sum(len(f) for f in want.values()) == len(ds) + len(ds.skipped)


def test_undecodable_file_names_are_escaped_in_the_one_line(tmp_path):
    root = os.fsencode(tmp_path / "fer")
    os.makedirs(os.path.join(root, b"train", b"happy"))
    os.makedirs(os.path.join(root, b"train", b"\xff\n"))
    with pytest.raises(DataError) as err:
        load_fer(tmp_path / "fer")
    assert_one_line(str(err.value))
    assert "train/\\udcff\\n: unknown class folder" in str(err.value)


def test_an_image_opencv_raises_on_is_one_bad_item(tmp_path):
    """A BMP whose header claims a huge height: cv2.imdecode raises cv2.error, not None."""
    root = tmp_path / "fer" / "happy"
    root.mkdir(parents=True)
    (root / "big.bmp").write_bytes(huge_bmp())
    cv2.imwrite(str(root / "ok.png"), np.zeros((4, 4), np.uint8))
    with pytest.raises(DataError, match=r"big.bmp: unreadable image \(.*CV_IO_MAX_IMAGE"):
        load_fer(tmp_path / "fer")
    ds = load_fer(tmp_path / "fer", skip_bad=True)
    assert len(ds) == 1 and ds.skipped[0].where.endswith("big.bmp")


def test_edgefer_error_is_what_every_data_error_is():
    assert issubclass(DataError, EdgeferError)
