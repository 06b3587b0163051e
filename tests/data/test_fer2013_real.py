"""Checks against the real FER2013 copy; skipped on machines without ../shared/data."""

from tests.cli_helpers import run

# The verified counts of ../shared/data/fer2013/README.md.
EXPECTED = {
    "Training": [28709, 3995, 436, 4097, 7215, 4830, 3171, 4965],
    "PublicTest": [3435, 467, 56, 496, 895, 653, 261, 607],
    "PrivateTest": [3589, 491, 55, 528, 879, 594, 416, 626],
}


def test_data_info_prints_verified_counts(real_fer2013):
    res = run("data", "info", real_fer2013)
    assert res.exit_code == 0, res.output
    rows = {
        line.split()[0]: [int(v.replace(",", "")) for v in line.split()[1:]]
        for line in res.output.splitlines()[2:]
    }
    for split, counts in EXPECTED.items():
        assert rows[split] == counts
