import gzip

import numpy as np
import pytest

from edgefer.data import load_fer
from edgefer.errors import DataError

HEADER = (
    "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"
)


def write_ferplus(path, usages, votes):
    lines = [HEADER] + [
        f"{u},fer{i:07d}.png," + ",".join(map(str, v))
        for i, (u, v) in enumerate(zip(usages, votes))
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def fer_usages():
    return ["Training"] * 14 + ["PublicTest"] * 7 + ["PrivateTest"] * 7


def test_majority_and_soft_labels(fer_csv, tmp_path):
    votes = [[0] * 10 for _ in range(28)]
    votes[0] = [10, 0, 0, 0, 0, 0, 0, 0, 0, 0]  # neutral
    votes[1] = [2, 6, 0, 0, 0, 0, 0, 0, 2, 0]  # happy, 2 unknown votes
    votes[2] = [0, 0, 0, 0, 0, 0, 0, 9, 1, 0]  # contempt -> dropped
    votes[3] = [5, 5, 0, 0, 0, 0, 0, 0, 0, 0]  # tie -> dropped
    votes[4] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 10]  # not a face -> dropped
    for i in range(5, 28):
        votes[i] = [0, 0, 0, 0, 8, 0, 2, 0, 0, 0]  # anger 8, fear 2
    ds = load_fer(fer_csv, ferplus=write_ferplus(tmp_path / "fer2013new.csv", fer_usages(), votes))
    assert len(ds) == 25 and len(ds.skipped) == 3
    assert ds.labels[0] == 6 and ds.labels[1] == 3 and (ds.labels[2:] == 0).all()
    np.testing.assert_allclose(ds.soft_labels[1], [0, 0, 0, 0.75, 0, 0, 0.25])
    np.testing.assert_allclose(ds.soft_labels[2], [0.8, 0, 0.2, 0, 0, 0, 0])


def test_row_order_is_checked(fer_csv, tmp_path):
    usages = fer_usages()
    usages[20], usages[21] = usages[21], usages[20]
    path = write_ferplus(tmp_path / "new.csv", usages, [[1] + [0] * 9] * 28)
    with pytest.raises(
        DataError, match=r"new.csv:22: Usage 'PrivateTest' but .* row 22 is 'PublicTest'"
    ):
        load_fer(fer_csv, ferplus=path)


def test_row_count_is_checked(fer_csv, tmp_path):
    path = write_ferplus(tmp_path / "new.csv", fer_usages()[:5], [[1] + [0] * 9] * 5)
    with pytest.raises(DataError, match="5 rows, but .* has 28"):
        load_fer(fer_csv, ferplus=path)


def test_negative_votes_are_refused(fer_csv, tmp_path):
    votes = [[1] + [0] * 9] * 28
    votes[3] = [-1, 2] + [0] * 8
    path = write_ferplus(tmp_path / "new.csv", fer_usages(), votes)
    with pytest.raises(DataError, match=r"new.csv:5: votes: expected integer counts 0 or more"):
        load_fer(fer_csv, ferplus=path)


def test_corrupt_gzip_vote_file_is_one_data_error(fer_csv, tmp_path):
    path = tmp_path / "fer2013new.csv.gz"
    path.write_bytes(gzip.compress(HEADER.encode())[:10] + b"\xff" * 20)  # zlib.error inside
    with pytest.raises(DataError, match="cannot read as a FER\\+ label file") as err:
        load_fer(fer_csv, ferplus=path)
    assert "\n" not in str(err.value)
