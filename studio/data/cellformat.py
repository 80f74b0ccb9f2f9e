"""A spreadsheet cell's value as the text the spreadsheet shows: 4 not 4.0, 25% not 0.25, 7/3/2024 not
2024-03-07 00:00:00.

.xlsx and .xls files store the raw value and a number format code ("0.00", "#,##0", "d/m/yyyy", "0%");
the program draws the text. No well-kept Python library renders these codes (the Python port of SheetJS's
formatter is unmaintained since 2020 and pulls in seven packages), so this module covers what data sheets
use: General, fixed decimals, thousands separators, percent, scientific, currency and other literal text,
dates and times. Anything else (fractions, conditions) falls back to General, the way a number looks
without a format. Month and day names are English: the program would show them in its own language.
(.ods files store the shown text itself, so they need none of this.)
"""
from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
# One token of a format code: a quoted literal, an escaped character, a [bracket] part, a run of one date
# letter, AM/PM, or any single character.
TOKEN = re.compile(r'"[^"]*"|\\.|\[[^\]]*\]|[Gg]eneral|AM/PM|am/pm|A/P|a/p|([yYmMdDhHsS])\1*|_.|\*.|.', re.S)
DIGITS = set("0#?")


def shown(value, number_format: str | None = "General") -> str:
    """The text a cell shows for `value` (a Python number, date, bool or text) under `number_format`."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, str):
        return value
    code = number_format or "General"
    if isinstance(value, (datetime, date, time, timedelta)):
        return _date(value, code)
    if isinstance(value, (int, float)):
        return _number(float(value), code)
    return str(value)


def general(number: float) -> str:
    """A number without a format: no '.0' on whole numbers, at most 10 significant digits."""
    if number == int(number) and abs(number) < 1e15:
        return str(int(number))
    return format(number, ".10g").replace("e", "E")


@lru_cache(maxsize=256)  # a sheet has few formats and many cells
def _sections(code: str) -> tuple[str, ...]:
    """Split 'positive;negative;zero;text' at semicolons that are not inside quotes or brackets."""
    parts, current = [], ""
    for match in TOKEN.finditer(code):
        if match.group(0) == ";":
            parts.append(current)
            current = ""
        else:
            current += match.group(0)
    return (*parts, current)


@lru_cache(maxsize=256)
def _tokens(section: str) -> tuple[str, ...]:
    return tuple(m.group(0) for m in TOKEN.finditer(section))


def _number(number: float, code: str) -> str:
    sections = _sections(code)
    section, sign = sections[0], "-" if number < 0 else ""
    if number < 0 and len(sections) > 1:
        section, sign = sections[1], ""  # the negative section draws its own sign or brackets
    elif number == 0 and len(sections) > 2:
        section = sections[2]
    prefix, pattern, suffix = _split_literals(section)
    if "/" in section:
        return sign + general(abs(number))  # fractions: not covered here
    if not set(pattern) & DIGITS and "general" not in pattern.lower():
        return (prefix + suffix).strip()  # a section of text only, e.g. 0;-0;"none"
    if "general" in pattern.lower():
        return (sign + prefix + general(abs(number)) + suffix).strip()
    value = abs(number) * 100 ** pattern.count("%")
    last = max(i for i, c in enumerate(pattern) if c in DIGITS)
    trailing_commas = len(pattern[last + 1:]) - len(pattern[last + 1:].lstrip(","))
    value /= 1000 ** trailing_commas  # "0.0,," shows millions
    if "E" in pattern.upper():
        mantissa = pattern.upper().split("E")[0]
        decimals = sum(c in DIGITS for c in mantissa.partition(".")[2])
        body = f"{value:.{decimals}E}"
    else:
        whole, _, fraction = pattern.replace("%", "").partition(".")
        most = sum(c in DIGITS for c in fraction)
        least = fraction.count("0")
        body = _fixed(value, most)
        if most > least:  # '#' places show only when needed
            integer, _, digits = body.partition(".")
            digits = digits.rstrip("0").ljust(least, "0")
            body = integer + ("." + digits if digits else "")
        integer, dot, digits = body.partition(".")
        integer = integer.zfill(whole.count("0")) if whole.count("0") else integer.lstrip("0")
        if "," in whole.rstrip(","):
            integer = f"{int(integer or 0):,}"
        body = integer + dot + digits
        if not integer and not digits:
            body = "0"
    return (sign + prefix + body + "%" * pattern.count("%") + suffix).strip()


def _fixed(value: float, places: int) -> str:
    """`value` with `places` decimals, halves rounded up as spreadsheets do (Python rounds them to even)."""
    step = Decimal(1).scaleb(-places)
    return str(Decimal(repr(value)).quantize(step, rounding=ROUND_HALF_UP))


@lru_cache(maxsize=256)
def _split_literals(section: str) -> tuple[str, str, str]:
    """(text before the number, the number's pattern, text after it) of one format section."""
    prefix, pattern, suffix = "", "", ""
    for token in _tokens(section):
        if token.lower() == "general" or token in DIGITS or token in ".,%" or (
                token in "Ee" and pattern) or (token in "+-" and pattern[-1:] in ("E", "e")):
            pattern += token
            continue
        if token == "@" or (token.startswith("[") and not token.startswith("[$")):
            continue  # text placeholder, colour or condition: draws nothing
        literal = _literal(token)
        if pattern:
            suffix += literal
        else:
            prefix += literal
    return prefix, pattern, suffix


def _literal(token: str) -> str:
    """The text a literal token draws."""
    if token.startswith('"'):
        return token[1:-1]
    if token.startswith("\\"):
        return token[1]
    if token.startswith("_"):
        return " "  # space as wide as the next character
    if token.startswith("*"):
        return ""  # fill the cell with a character: nothing in text
    if token.startswith("[$"):
        return token[2:-1].split("-")[0]  # [$€-407]: the currency symbol
    return token


def _date(value, code: str) -> str:
    tokens = _tokens(_sections(code)[0])
    if not any(t[0] in "yYmMdDhHsS" for t in tokens if not t.startswith(('"', "\\", "["))) and not any(
            t.lower().startswith("[h") or t.lower().startswith("[m") for t in tokens):
        return _iso(value)
    if isinstance(value, timedelta):
        return _duration(value, tokens)
    if isinstance(value, time):
        value = datetime.combine(date(1899, 12, 31), value)
    elif not isinstance(value, datetime):
        value = datetime.combine(value, time())
    twelve = any(t.upper() in ("AM/PM", "A/P") for t in tokens)
    out = []
    for i, token in enumerate(tokens):
        letter = token[0].lower()
        if token.upper() in ("AM/PM", "A/P"):
            word = "AM" if value.hour < 12 else "PM"
            out.append(word if token.upper() == "AM/PM" else word[0])
        elif letter == "y" and token[0] in "yY":
            out.append(str(value.year) if len(token) > 2 else f"{value.year % 100:02d}")
        elif letter == "m" and token[0] in "mM":
            if _is_minute(tokens, i):
                out.append(f"{value.minute:0{min(len(token), 2)}d}")
            else:
                out.append(_month(value.month, len(token)))
        elif letter == "d" and token[0] in "dD":
            out.append(_day(value, len(token)))
        elif letter == "h" and token[0] in "hH":
            hour = (value.hour % 12 or 12) if twelve else value.hour
            out.append(f"{hour:0{min(len(token), 2)}d}")
        elif letter == "s" and token[0] in "sS":
            out.append(f"{value.second:0{min(len(token), 2)}d}")
        else:
            out.append("" if token.startswith("[") and not token.startswith("[$") else _literal(token))
    return "".join(out).strip()


def _is_minute(tokens: list[str], i: int) -> bool:
    """'m' means minutes right after an hour or right before seconds, and months everywhere else."""
    def letter(j):
        return tokens[j][0].lower() if tokens[j][0].lower() in "ymdhs" and not tokens[j].startswith("[") else ""
    before = next((letter(j) for j in range(i - 1, -1, -1) if letter(j)), "")
    after = next((letter(j) for j in range(i + 1, len(tokens)) if letter(j)), "")
    return before == "h" or after == "s"


def _month(month: int, width: int) -> str:
    name = MONTHS[month - 1]
    return {1: str(month), 2: f"{month:02d}", 3: name[:3], 5: name[0]}.get(width, name)


def _day(value: date, width: int) -> str:
    name = DAYS[value.weekday()]
    return {1: str(value.day), 2: f"{value.day:02d}", 3: name[:3]}.get(width, name)


def _duration(value: timedelta, tokens: list[str]) -> str:
    seconds = int(value.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}:{minutes:02d}"
    return text + (f":{secs:02d}" if any(t[0].lower() == "s" for t in tokens) else "")


def _iso(value) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d" if value.time() == time() else "%Y-%m-%d %H:%M")
    if isinstance(value, timedelta):
        return _duration(value, ["s"])
    if isinstance(value, time):
        return value.strftime("%H:%M:%S" if value.second else "%H:%M")
    return value.isoformat()
