"""Hadoop path globs as Spark applies them (no Spark)."""

from __future__ import annotations

import pytest

from spark_jobs.globs import glob_escape, glob_regex, join_glob, split_glob, unescape

ODD_NAMES = ["photos [2024]", "a{b,c}", "x*?.jpg", "back\\slash", "é ñ #1%20.jpg", "plain"]


@pytest.mark.parametrize("name", ODD_NAMES)
def test_an_escaped_name_matches_itself_and_nothing_else(name):
    regex = glob_regex("/in/" + glob_escape(name))
    assert regex.match("/in/" + name)
    assert not regex.match("/in/" + name + "x") and not regex.match("/in/other")
    assert unescape(glob_escape(name)) == name


def test_globs_match_as_hadoop_matches_them():
    assert glob_regex("/in/*/2024").match("/in/a b/2024")
    assert not glob_regex("/in/*/2024").match("/in/a/b/2024")  # '*' stays within a name
    assert glob_regex("/in/{a,b}[0-9].jpg").match("/in/b7.jpg")
    assert not glob_regex("/in/[^a]x").match("/in/ax")


@pytest.mark.parametrize(("uri", "split"), [
    ("/in/photos", ("/in/photos", "")),
    ("/in/*/2024", ("/in", "*/2024")),
    ("/in/photos \\[2024\\]", ("/in/photos [2024]", "")),  # escaped: a literal folder
    ("/in/photos \\[2024\\]/*.jpg", ("/in/photos [2024]", "*.jpg")),
    ("s3a://bucket/a{b,c}/x", ("s3a://bucket", "a{b,c}/x")),
])
def test_split_glob_keeps_the_literal_folders_in_front(uri, split):
    assert split_glob(uri) == split


def test_join_glob_escapes_the_folder_and_keeps_the_pattern():
    assert join_glob("/in/photos [2024]/", "*.jpg") == "/in/photos \\[2024\\]/*.jpg"
    assert join_glob("file:/in/a{b}", "") == "file:/in/a\\{b\\}"
    for root, pattern in [("/in/photos [2024]", "*.jpg"), ("s3a://b/x", "*/2024"), ("/in/a{b}", "")]:
        assert split_glob(join_glob(root, pattern)) == (root, pattern)
