from __future__ import annotations

import contextlib
from urllib.parse import quote, urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadbridge.crms.formdata import FormDataError, flag, items, parse_form, split_key, text


def test_nested_items_in_index_order_with_percent_encoded_keys() -> None:
    body = "talk%5Badd%5D%5B1%5D%5Btalk_id%5D=2&talk%5Badd%5D%5B0%5D%5Btalk_id%5D=1&account%5Bid%5D=5"
    form = parse_form(body)
    assert [text(item, "talk_id") for item in items(form["talk"]["add"])] == ["1", "2"]  # type: ignore[index]
    assert text(form, "account", "id") == "5"


def test_account_block_anywhere_and_several_entity_blocks() -> None:
    form = parse_form(
        urlencode({"account[subdomain]": "a", "leads[status][0][id]": "1", "talk[update][0][talk_id]": "7"})
    )
    assert set(form) == {"account", "leads", "talk"}


def test_missing_and_empty_fields_are_none() -> None:
    form = parse_form("talk[add][0][talk_id]=&talk[add][0][origin]=%20")
    item = items(form["talk"]["add"])[0]  # type: ignore[index]
    assert text(item, "talk_id") is None
    assert text(item, "origin") is None
    assert text(item, "absent") is None


@pytest.mark.parametrize(
    ("raw", "expected"), [("1", True), ("0", False), ("Y", True), ("N", False), ("x", None), ("", None)]
)
def test_flags(raw: str, expected: bool | None) -> None:
    assert flag(parse_form(f"f={raw}"), "f") is expected


def test_php_append_and_later_key_wins() -> None:
    form = parse_form("a[]=x&a[]=y&b=1&b[c]=2")
    assert [v for _, v in sorted(form["a"].items())] == ["x", "y"]  # type: ignore[union-attr]
    assert form["b"] == {"c": "2"}


def test_malformed_brackets_are_literal_names() -> None:
    assert split_key("a[b") == ["a[b"]
    assert split_key("[x]") == ["[x]"]
    assert split_key("a[b]c") == ["a[b]c"]


@pytest.mark.parametrize("body", [b"\xff\xfe", b"a%00=1", b"x=" + b"1" * (1024 * 1024 + 1), b"a" + b"[x]" * 40 + b"=1"])
def test_rejected_bodies_raise_form_data_error(body: bytes) -> None:
    with pytest.raises(FormDataError):
        parse_form(body)


@settings(max_examples=400)
@given(st.binary(max_size=2048))
def test_any_bytes_parse_or_raise_form_data_error(body: bytes) -> None:
    with contextlib.suppress(FormDataError):
        parse_form(body)


keys = st.text(
    alphabet=st.characters(blacklist_characters="[]\x00", blacklist_categories=("Cs",)), min_size=1, max_size=8
)
values = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=300)
@given(st.dictionaries(keys, st.dictionaries(keys, values, max_size=4), min_size=1, max_size=4))
def test_round_trip_of_two_level_forms(data: dict[str, dict[str, str]]) -> None:
    pairs = [(f"{a}[{b}]", v) for a, inner in data.items() for b, v in inner.items()]
    body = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)
    form = parse_form(body)
    for a, inner in data.items():
        for b, v in inner.items():
            assert form[a][b] == v  # type: ignore[index]
