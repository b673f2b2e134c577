"""Local rating files become per-user click sequences in time order; bad files fail in one line."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.world.ratings import RatingsError, load_interactions, sample_negatives


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_movielens_100k_orders_each_users_items_by_time(tmp_path):
    _write(
        tmp_path / "u.data",
        [
            "196\t242\t3\t881250949",
            "186\t302\t3\t891717742",
            "196\t377\t1\t878887116",
            "196\t51\t2\t881250949",
            "",
            "186\t242\t5\t891717741",
        ],
    )
    data = load_interactions(tmp_path, "movielens-100k")
    # items numbered from 1 in order of appearance: 242->1, 302->2, 377->3, 51->4
    assert data.num_items == 4 and data.num_users == 2
    assert data.sequences[0].tolist() == [3, 1, 4]  # user 196: 878887116, then a tie in file order
    assert data.times[0].tolist() == [878887116, 881250949, 881250949]
    assert data.sequences[1].tolist() == [1, 2]  # user 186


def test_movielens_1m_and_amazon_formats(tmp_path):
    _write(tmp_path / "ratings.dat", ["1::1193::5::978300760", "1::661::3::978302109"])
    ml = load_interactions(tmp_path, "movielens-1m")
    assert ml.sequences[0].tolist() == [1, 2]
    amazon = _write(tmp_path / "Books.csv", ["B001,A9,5.0,1400000000", "B002,A9,4.0,1300000000"])
    data = load_interactions(amazon, "amazon")  # item,user,rating,timestamp
    assert data.num_users == 1 and data.sequences[0].tolist() == [2, 1]


def test_short_users_can_be_dropped(tmp_path):
    _write(tmp_path / "u.data", ["1\t10\t3\t5", "2\t10\t3\t5", "2\t11\t3\t6"])
    assert load_interactions(tmp_path, "movielens-100k", min_interactions=2).num_users == 1


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("196\t242\t3", "u.data:2: expected 4 fields"),
        ("196\t242\tfive\t881250949", "u.data:2: rating 'five' or timestamp"),
        ("\t242\t3\t881250949", "u.data:2: empty user or item id"),
    ],
)
def test_a_malformed_line_names_file_and_line(tmp_path, line, message):
    _write(tmp_path / "u.data", ["1\t10\t3\t5", line])
    with pytest.raises(RatingsError, match=message):
        load_interactions(tmp_path, "movielens-100k")


def test_a_missing_path_names_the_expected_file(tmp_path):
    with pytest.raises(RatingsError, match="no such file or folder \\(expected ratings.dat"):
        load_interactions(tmp_path / "ml-1m", "movielens-1m")
    with pytest.raises(RatingsError, match="no u.data file"):
        load_interactions(tmp_path, "movielens-100k")
    with pytest.raises(RatingsError, match="valid formats: movielens-100k"):
        load_interactions(tmp_path, "netflix")


def test_negatives_avoid_the_users_items_and_repeat_with_the_seed(tmp_path):
    lines = [f"1\t{i}\t4\t{i}" for i in (2, 3, 5, 9)] + [f"2\t{i}\t4\t1" for i in range(1, 13)]
    data = load_interactions(_write(tmp_path / "u.data", lines), "movielens-100k")
    held = set(data.sequences[0].tolist())
    negatives = sample_negatives(data, 0, 500, seed=3)
    assert not held & set(negatives.tolist())
    assert set(negatives.tolist()) == set(range(1, data.num_items + 1)) - held  # all reachable
    assert np.array_equal(negatives, sample_negatives(data, 0, 500, seed=3))
    assert not np.array_equal(negatives, sample_negatives(data, 0, 500, seed=4))
    with pytest.raises(RatingsError, match="interacted with every item"):
        sample_negatives(data, 1, 1, seed=0)


def test_a_bom_is_dropped_not_read_into_the_first_user(tmp_path):
    path = tmp_path / "u.data"
    path.write_bytes(b"\xef\xbb\xbf" + b"7\t1\t3\t100\n7\t2\t3\t200\n")
    data = load_interactions(path, "movielens-100k")
    assert data.num_users == 1 and data.num_items == 2


def test_text_that_is_not_utf8_is_one_line_naming_the_file(tmp_path):
    path = tmp_path / "u.data"
    path.write_bytes(b"1\t1\t3\t100\n2\t\xe9t\xe9\t3\t200\n")
    with pytest.raises(RatingsError, match=r"u\.data:2: not UTF-8 text"):
        load_interactions(path, "movielens-100k")


@pytest.mark.parametrize("stamp", ["inf", "1e30", "-nan", "123456789012345678901"])
def test_a_timestamp_that_is_no_time_is_refused(tmp_path, stamp):
    _write(tmp_path / "u.data", ["1\t1\t3\t100", f"1\t2\t3\t{stamp}"])
    with pytest.raises(RatingsError, match=r"u\.data:2: "):
        load_interactions(tmp_path, "movielens-100k")


def test_a_pipe_a_device_and_a_dangling_link_are_refused_before_opening(tmp_path):
    import os

    fifo = tmp_path / "pipe" / "u.data"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    with pytest.raises(RatingsError, match="not a regular file"):
        load_interactions(fifo.parent, "movielens-100k")  # would block forever on open
    zero = tmp_path / "zero.data"
    zero.symlink_to("/dev/zero")
    with pytest.raises(RatingsError, match="not a regular file"):
        load_interactions(zero, "movielens-100k")  # would read forever
    dangling = tmp_path / "gone.data"
    dangling.symlink_to(tmp_path / "nothing")
    with pytest.raises(RatingsError, match="a link to nothing"):
        load_interactions(dangling, "movielens-100k")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(RatingsError, match="cannot be read"):
        load_interactions(loop, "movielens-100k")


def test_old_mac_line_endings_split_like_any_other(tmp_path):
    path = tmp_path / "u.data"
    path.write_bytes(b"1\t1\t3\t100\r1\t2\t3\t200\r2\t1\t5\t300\r")
    data = load_interactions(path, "movielens-100k")
    assert data.num_users == 2 and data.num_items == 2
