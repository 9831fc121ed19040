"""Mask personal data and secrets in text before it is stored: `redact("mail ana@acme.com")` -> "mail [email]".

Pure functions, no state. What is masked, in this order (earlier kinds win where they overlap):

- secrets `[secret]`: PEM private key blocks, Lore keys `lore_<id>_<secret>`, `Bearer <token>`, JWTs,
  AWS access key ids (AKIA/ASIA...), `sk-...` and Stripe `sk_live_...` keys, GitHub tokens (ghp_, gho_,
  github_pat_...), Slack tokens (xoxb-, xoxp-, xoxa-...), Google API keys, and the value after
  `password=`, `secret:`, `token=`, `api_key=` and the like (the key name is kept);
- e-mail addresses `[email]`;
- payment card numbers `[card]`: 13-19 digits, contiguous or in the printed 4-4-4-4(-3) / 4-6-5 / 4-6-4
  groups, and only when the Luhn checksum holds;
- phone numbers `[phone]`: international (`+44 20 7946 0958`, `+1 (415) 555-2671`), US
  (`(415) 555-2671`, `415-555-2671`, `1-800-555-0199`), European national numbers with a leading 0
  (`030 1234567`, `06 12 34 56 78`, `020 7946 0958`), and any 7-15 digit number right after a word like
  "phone", "call" or "mobile". Dates, times, versions, IP addresses and ordinary numbers ("40 hours",
  "ISO 27001") are left alone: each shape needs its separators and digit count, and date shapes are skipped.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

KINDS = ("secret", "email", "card", "phone")

_KEY_NAMES = (r"(?:[A-Za-z0-9]+[_.-])*(?:password|passwd|passphrase|pwd|secret|client[_-]?secret|token|"
              r"api[_-]?key|apikey|access[_-]?key|secret[_-]?key|private[_-]?key|auth[_-]?token|credentials?)")
_FIRST = -1  # the first group that took part in the match
# (pattern, group holding the secret, 0 for the whole match)
_SECRETS: list[tuple[re.Pattern[str], int]] = [
    (re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?"
                r"(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)", re.S), 0),
    (re.compile(r"\blore_[A-Za-z0-9]{4,}_[A-Za-z0-9_\-]{8,}"), 0),
    (re.compile(r"\beyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*"), 0),
    # a bearer token is long and has a digit: "Bearer authentication" is prose, not a credential
    (re.compile(r"\b[Bb]earer\s+((?=[A-Za-z0-9\-._~+/]*\d)[A-Za-z0-9\-._~+/]{16,}=*)"), 1),
    (re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b"), 0),
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{20,}"), 0),
    (re.compile(r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}"), 0),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"), 0),
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,}"), 0),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"), 0),
    (re.compile(r"\bAIza[0-9A-Za-z_\-]{35}"), 0),
    # key=value: any value up to the next space (a password may hold & , ;). key: value only when the value
    # looks like a credential (glued to the colon, or holding a digit or symbol), so that
    # "password: at least 12 characters?" keeps its words
    (re.compile(rf"(?i)\b{_KEY_NAMES}\s*=\s*(\"[^\"]*\"|'[^']*'|\S+)"), 1),
    (re.compile(rf"(?i)\b{_KEY_NAMES}\s*:(?:\s*(\"[^\"]*\"|'[^']*')|([^\s\"']{{3,}})|"
                r"\s+((?=\S*[\d!#$%^&*+/=?@~|<>\[\]{}(),;-])\S{4,}))"), _FIRST),
]
_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+\-]*@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}\b")

_END = r"(?![ -]?\d)"  # a match must not stop in the middle of a longer number
_CARDS = [re.compile(p + _END) for p in (r"\d{13,19}", r"\d{4}([ -])\d{4}\1\d{4}\1\d{4}\1\d{3}",
                                         r"\d{4}([ -])\d{4}\1\d{4}\1\d{1,4}", r"\d{4}([ -])\d{6}\1\d{4,5}")]
_DIGIT_START = re.compile(r"(?<!\d)(?<!\d[.,])\d")  # not the decimals of 3.14159...

_BEFORE = r"(?<![\w+.:/\-])"  # not the tail of a date, version, time, path or longer number
_AFTER = r"(?!\w|[.:/\-]\d)"
_SEP = r"[ .\-]"
# (pattern, group holding the number, fewest digits, most digits)
_PHONES: list[tuple[re.Pattern[str], int, int, int]] = [
    (re.compile(r"(?<![\w+])\+\d{1,3}(?:" + _SEP + r"?\(\d{1,4}\))?(?:" + _SEP + r"?\d{1,5}){1,6}" + _AFTER), 0, 8, 15),
    (re.compile(_BEFORE + r"(?:1" + _SEP + r")?(?:\(\d{3}\) ?|\d{3}(" + _SEP + r"))\d{3}(?(1)\1|" + _SEP + r")\d{4}"
                + _AFTER), 0, 10, 11),
    (re.compile(_BEFORE + r"0\d{1,4}([ /.\-]?)\d{2,8}(?:\1\d{2,8}){0,3}" + _AFTER), 0, 9, 12),
    (re.compile(r"(?i)\b(?:phone|mobile|cell|fax|call|tel|telephone|whatsapp|sms)(?:[ :.#]+(?:no|nr|number))?"
                r"[ :.#]+(\(?\d[\d ().\-]{5,}\d)" + _AFTER), 1, 7, 15),
]
_PLACEHOLDER = re.compile(r"\[(?:%s)\]" % "|".join(KINDS))
_DATE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\b")


@dataclass(frozen=True, slots=True)
class Redacted:
    """The masked text and how many of each kind were masked."""

    text: str
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.counts)


def redact(text: str) -> str:
    """The text with e-mail addresses, phone and card numbers and secrets replaced by [email] etc."""
    return scan(text).text


def scan(text: str) -> Redacted:
    """Like `redact`, also counting what was masked (for the audit record)."""
    if not text:
        return Redacted(text or "")
    counts: Counter[str] = Counter()
    for pattern, group in _SECRETS:
        text = _sub(pattern, group, "secret", text, counts)
    text = _sub(_EMAIL, 0, "email", text, counts)
    text = _cards(text, counts)
    for pattern, group, low, high in _PHONES:
        text = _sub(pattern, group, "phone", text, counts, lambda s, lo=low, hi=high: _is_phone(s, lo, hi))
    return Redacted(text, dict(counts))


def luhn(digits: str) -> bool:
    """The payment card checksum: every second digit from the right doubled, the sum a multiple of 10."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _sub(pattern: re.Pattern[str], wanted: int, kind: str, text: str, counts: Counter, check=None) -> str:
    def one(m: re.Match[str]) -> str:
        group = next(i for i, g in enumerate(m.groups(), 1) if g is not None) if wanted == _FIRST else wanted
        if _PLACEHOLDER.fullmatch(m.group(group)) or check is not None and not check(m.group(group)):
            return m.group(0)
        counts[kind] += 1
        if not group:
            return f"[{kind}]"
        s, e = m.start(group) - m.start(0), m.end(group) - m.start(0)
        whole = m.group(0)
        return whole[:s] + f"[{kind}]" + whole[e:]

    return pattern.sub(one, text)


def _cards(text: str, counts: Counter) -> str:
    # every place a number starts is tried with every card shape, so a year or an order number just before
    # a card (e.g. "2024 4111 1111 1111 1111") does not hide it
    out, pos = [], 0
    for start in _DIGIT_START.finditer(text):
        at = start.start()
        if at < pos:
            continue
        for shape in _CARDS:
            m = shape.match(text, at)
            if m:
                digits = re.sub(r"\D", "", m.group(0))
                if 13 <= len(digits) <= 19 and luhn(digits):
                    out.append(text[pos:at] + "[card]")
                    pos = m.end()
                    counts["card"] += 1
                    break
    out.append(text[pos:])
    return "".join(out)


def _is_phone(candidate: str, low: int, high: int) -> bool:
    digits = sum(ch.isdigit() for ch in candidate)
    return low <= digits <= high and not _DATE.fullmatch(candidate) and not _ISO_DATE.match(candidate)
