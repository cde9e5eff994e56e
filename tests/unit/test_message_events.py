"""amoCRM message webhooks: any form parses without an error, and only well-formed messages come out."""

from __future__ import annotations

from urllib.parse import urlencode

from hypothesis import given
from hypothesis import strategies as st

from leadbridge.crms.amocrm.events import MAX_TEXT, parse_message_events
from leadbridge.crms.formdata import FormDataError, parse_form

KEYS = st.sampled_from(
    [
        "message[add][0][talk_id]",
        "message[add][0][id]",
        "message[add][0][text]",
        "message[add][0][created_at]",
        "message[add][0][author][type]",
        "message[add][1][attachment][type]",
        "message[add][1][talk_id]",
        "message[add][1][id]",
        "outgoing_message[add][0][talk_id]",
        "outgoing_message[add][0][id]",
        "outgoing_message[add][0][text]",
        "message[add]",
        "message",
    ]
)


@given(st.lists(st.tuples(KEYS, st.text(max_size=50)), max_size=12))
def test_any_message_form(pairs: list[tuple[str, str]]) -> None:
    try:
        form = parse_form(urlencode(pairs))
    except FormDataError:  # the hook answers 400
        return
    messages, unusable = parse_message_events(form)
    assert set(unusable) <= {"message_without_talk", "unusable_message"}
    assert all(count > 0 for count in unusable.values())
    for message in messages:
        assert message.talk_id.isascii()
        assert message.talk_id.isdigit()
        assert message.author in {"client", "operator", "system"}
        assert 0 < len(message.text) <= MAX_TEXT


def test_directions_and_attachments() -> None:
    form = parse_form(
        urlencode(
            {
                "message[add][0][id]": "a",
                "message[add][0][talk_id]": "7",
                "message[add][0][text]": "hi",
                "message[add][1][id]": "b",
                "message[add][1][talk_id]": "7",
                "message[add][1][attachment][type]": "voice",
                "outgoing_message[add][0][id]": "c",
                "outgoing_message[add][0][talk_id]": "7",
                "outgoing_message[add][0][text]": "hello",
                "outgoing_message[add][0][author][type]": "bot",
                "message[add][2][id]": "d",
                "message[add][2][talk_id]": "²",
            }
        )
    )
    messages, unusable = parse_message_events(form)
    assert [(m.author, m.text) for m in messages] == [("client", "hi"), ("client", "[voice]"), ("system", "hello")]
    assert sum(unusable.values()) == 1
