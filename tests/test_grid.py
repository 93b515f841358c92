import pytest

from profiler.errors import UserError
from profiler.measure.grid import (
    EXTEND_SIZES,
    check_lengths,
    default_lengths,
    extend_points,
    generate_pairs,
    geometric,
    middle_first,
    parse_lengths,
)


def test_lists_and_ranges():
    assert parse_lengths("256,16,64,16") == [16, 64, 256]
    assert parse_lengths("64:8192") == [64, 128, 256, 512, 1024, 2048, 4096, 8192]
    assert parse_lengths("5:100") == [5, 8, 16, 32, 64, 100]
    assert parse_lengths("7") == [7]


@pytest.mark.parametrize("text", ["", "a,b", "64:", "1:2:3", "100:10", "0,4", "-8", "1.5"])
def test_malformed_lengths_are_user_errors(text):
    with pytest.raises(UserError, match="--lengths"):
        parse_lengths(text)


def test_length_beyond_the_maximum_names_the_maximum():
    with pytest.raises(UserError, match="2048 tokens is beyond gpt2's maximum of 1024 positions"):
        check_lengths([512, 2048], 1024, "gpt2")


def test_default_grid_runs_from_8_to_the_maximum():
    assert default_lengths(1024) == [8, 11, 16, 23, 32, 45, 64, 91, 128, 181, 256, 362, 512, 724, 1024]
    assert default_lengths(100) == [8, 11, 16, 23, 32, 45, 64, 91, 100]
    assert default_lengths(4) == [4]
    assert geometric(8, 8) == [8]


def test_generate_pairs_fit_the_positions():
    for top in (8, 100, 1024):
        for n_in, n_out in generate_pairs(default_lengths(top), top):
            assert n_in >= 1 and n_in + n_out <= top


def test_extend_points_lie_inside_the_positions_each_size_at_each_context():
    assert EXTEND_SIZES == (16, 64, 256)
    # gpt2: the top context lowered so that each size ends at the last position
    assert extend_points([8, 91, 1023], 1024) == [(8, 16), (8, 64), (8, 256), (91, 16), (91, 64), (91, 256),
                                                  (768, 256), (960, 64), (1008, 16)]
    for positions in (17, 64, 128, 300, 4096):
        contexts = [1, positions // 2, positions - 1]
        points = extend_points(contexts, positions)
        assert points and all(c >= 1 and s >= 1 and c + s <= positions for c, s in points)
        assert {s for _, s in points} == {s for s in EXTEND_SIZES if s < positions}
    assert extend_points([1], 16) == []  # no size leaves a cached token


def test_the_lengths_between_come_middle_first():
    between = [11, 23, 45, 91, 181, 362, 724]
    # the middle of the logarithms, then each side's middle (the lower first), then each quarter's
    assert middle_first(between) == [91, 23, 362, 11, 45, 181, 724]
    assert sorted(middle_first(between)) == between
    assert middle_first([]) == [] and middle_first([5]) == [5]
    assert middle_first([8, 16, 32, 64, 128]) == [32, 8, 64, 16, 128]  # a tie: the lower
