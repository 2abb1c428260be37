import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.common.memory import format_size, parse_size, parse_variants

UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
         "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


@pytest.mark.parametrize("text,expected", [
    ("2GB", 2 * 10**9), ("1.5 GiB", 3 * 2**29), ("800MB", 8 * 10**8), ("14GB", 14 * 10**9),
    ("512", 512), (" 4 gb ", 4 * 10**9), ("0.5TB", 5 * 10**11),
])
def test_sizes(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "GB", "2XB", "-1GB", "1.2.3GB", "two GB", "2 GB extra"])
def test_bad_sizes_are_rejected(text):
    with pytest.raises(ValueError):
        parse_size(text)


def test_three_variants():
    assert parse_variants("20GB (Q4_K_M), 24GB (Q6_K), 32GB (Q8_0)") == [
        ("Q4_K_M", 20 * 10**9), ("Q6_K", 24 * 10**9), ("Q8_0", 32 * 10**9)]


def test_single_size_is_one_unnamed_variant():
    assert parse_variants("2GB") == [("", 2 * 10**9)]


def test_variants_in_a_list_need_names():
    with pytest.raises(ValueError):
        parse_variants("20GB, 24GB (Q6_K)")


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(sorted(UNITS)),
       st.sampled_from(["", " ", "  "]))
def test_integer_sizes_in_any_unit(n, unit, space):
    assert parse_size(f"{n}{space}{unit}") == n * UNITS[unit]


@given(st.decimals(min_value=0, max_value=10**4, places=3, allow_nan=False, allow_infinity=False),
       st.sampled_from(sorted(UNITS)))
def test_decimal_sizes_round_to_bytes(d, unit):
    assert parse_size(f"{d}{unit}") == round(float(d) * UNITS[unit])


@given(st.lists(st.tuples(st.from_regex(r"[A-Z][A-Z0-9_]{0,8}", fullmatch=True),
                          st.integers(min_value=1, max_value=999)), min_size=1, max_size=6))
def test_variant_lists_round_trip(variants):
    text = ", ".join(f"{gb}GB ({name})" for name, gb in variants)
    assert parse_variants(text) == [(name, gb * 10**9) for name, gb in variants]


@given(st.integers(min_value=1, max_value=10**13))
def test_format_then_parse_is_close(n):
    assert abs(parse_size(format_size(n)) - n) <= max(n * 0.05, 1)
