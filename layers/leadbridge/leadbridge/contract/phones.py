"""Phones to E.164 and e-mails to a canonical form. A value that is not a real number or address is dropped,
never guessed into one."""

from __future__ import annotations

import re

import phonenumbers

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,}$")


def to_e164(raw: str, default_region: str = "RU") -> str | None:
    candidate = raw.strip()
    if not candidate or len(candidate) > 40:
        return None
    digits = re.sub(r"\D", "", candidate)
    # Russian/Kazakh numbers are often written 8XXXXXXXXXX or 7XXXXXXXXXX without a plus.
    if not candidate.startswith("+") and len(digits) == 11 and digits[0] in "78" and default_region in {"RU", "KZ"}:
        candidate = "+7" + digits[1:]
    elif not candidate.startswith("+") and len(digits) > 11:
        candidate = "+" + digits
    try:
        number = phonenumbers.parse(candidate, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phones_e164(values: list[str], default_region: str = "RU") -> list[str]:
    seen: dict[str, None] = {}
    for value in values:
        number = to_e164(value, default_region)
        if number is not None:
            seen.setdefault(number)
    return list(seen)


def clean_emails(values: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for value in values:
        email = value.strip().lower()
        if _EMAIL.match(email):
            seen.setdefault(email)
    return list(seen)
