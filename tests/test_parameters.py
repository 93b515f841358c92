"""A user's grid and settings: read, and refused in one line."""

import pytest

from profiler.errors import UserError
from profiler.lba.exercises import Debugging
from profiler.lba.parameters import MAX_VALUES, parse_settings, parse_values


def test_parse_values():
    assert parse_values("1:4", "k") == [1, 2, 3, 4]
    assert parse_values("2,4,0.5", "p") == [2, 4, 0.5]
    assert len(parse_values(f"1:{MAX_VALUES}", "k")) == MAX_VALUES


@pytest.mark.parametrize("text, message", [
    ("", "expected a list like 2,4,8"),
    ("2,,4", "expected a list like 2,4,8"),
    ("2,inf", "of finite numbers"),
    ("nan", "of finite numbers"),
    ("-inf,2", "of finite numbers"),
    ("1.5:3", "or a range like 1:12"),
    ("1:2:3", "or a range like 1:12"),
    (f"1:{MAX_VALUES + 1}", f"{MAX_VALUES + 1:,} values, more than the limit of {MAX_VALUES:,}"),
    ("1:" + "9" * 30, "values, more than the limit"),
    (",".join(["1"] * (MAX_VALUES + 1)), "more than the limit"),
])
def test_parse_values_refuses(text, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        parse_values(text, "k")


@pytest.mark.parametrize("settings, vary, message", [
    (["m_q=nan"], None, "--set m_q=nan: debugging: m_q must be a number at least 1e-09"),
    (["l=inf"], None, "l must be a whole number at least 1 and at most 1,000,000,000 (not inf)"),
    (["k=2.5"], None, "(not 2.5)"),
    (["b=-1"], None, "(not -1)"),
    (["k=4"], "k", "--set k=4: k is the varied parameter (--vary k): give it with --values"),
    (["k"], None, "expected k=NUMBER"),
    (["=3"], None, "no parameter ''"),
])
def test_parse_settings_refuses(settings, vary, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_settings(Debugging, settings, vary)


def test_parse_settings_keeps_the_defaults_it_is_not_given():
    assert parse_settings(Debugging, ["l=8", "m_q=0.5"], "k") == Debugging.defaults() | {"l": 8, "m_q": 0.5}
