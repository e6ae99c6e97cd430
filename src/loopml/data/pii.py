"""Find columns that look like they hold personal data (PII).

:func:`scan_pii` looks at a table two ways:

* **Values** (string-like columns only: ``string``, ``large_string``, ``string_view``
  and dictionary-encoded strings; pandas ``object``/``str``/``category`` columns
  holding strings). Up to ``sample_size`` non-blank values per column are matched,
  vectorised with :func:`pyarrow.compute.match_substring_regex` (no Python loop per
  value), against these kinds:

  ``email``
      ``local@domain.tld``.
  ``phone``
      7 to 15 digits written the way phone numbers are: a leading ``+``
      (``+1 415 555 0123``, ``+14155550123``, ``+49 (0)30 1234567``), an area code in
      parentheses (``(415) 555-0123``), three or more digit groups separated by
      spaces, dots or dashes (``415-555-0123``, ``06 12 34 56 78``), or two groups
      after a trunk ``0`` (``030 12345678``). Plain digit strings are never phones
      (integers, ids, years), nor are dates (``2024-01-15``, ``15.01.2024``), IPv4
      addresses, dot-grouped thousands (``1.234.567``), ZIP+4 codes and US SSNs
      (``123-45-6789``).
  ``payment_card``
      13 to 19 digits, optionally grouped by single spaces or dashes, not starting
      with 0, that pass the Luhn checksum (computed with numpy over the digit
      matrix). A random 16-digit id passes Luhn one time in ten, so an id column
      stays well under any sensible ``min_match_rate``.
  ``ip_address``
      IPv4 (dotted quad, each octet 0-255) or IPv6 (full, ``::``-compressed,
      with an embedded IPv4 or a zone index).

  Numeric columns are not pattern-scanned: a card number that a CSV reader typed
  as ``int64`` is not found by its values (its column name still counts).

  A column is reported for a kind when the share of sampled values of that kind is
  at least ``min_match_rate``. Blank strings count as missing. A value counted as a
  payment card is not also counted as a phone number.

* **Names**: a column whose name reads like a personal identifier is reported as
  ``name_like`` whatever its type. The name is split into words on ``_``, ``-``,
  ``.``, spaces, digits and camelCase, and runs of adjacent words are looked up
  joined, so ``first_name``, ``firstName`` and ``FirstName`` all read
  ``firstname``. Decisions:

  - ``name`` alone is personal (``name``, ``first_name``, ``customerName``,
    ``surname``, ``username``, ``nickname``); ``name`` qualified by something that
    is not a person is not (``filename``, ``file_name``, ``product_name``,
    ``hostname``).
  - e-mail, phone, postal address, birth date, government ids (SSN, passport,
    national/tax id, driver's licence), bank accounts (IBAN, account number),
    payment cards and IP addresses are personal wherever the word appears
    (``home_phone``, ``date_of_birth``, ``ip_address``, ``billingAddress``).
  - A name that says the column is *derived* from the identifier is not reported:
    hashed, encrypted, masked or tokenised values (``username_hash``,
    ``email_sha256``) and counts, lengths, flags and types (``has_email``,
    ``email_verified``, ``name_length``, ``num_phones``, ``email_domain``).
    Hashes are still pseudonymous data under GDPR, but they are the usual way of
    removing the identifier, and flagging them would bury the real findings.

Findings are sorted by column, then kind. A column can have several (a column
named ``email`` that holds e-mail addresses has an ``email`` and a ``name_like``
finding). Examples are masked so that no example holds a whole value:
``j***@example.com``, ``**** **** **** 1111``, ``+* ***-***-**23``, ``192.*.*.*``.

Only a sample is read: for a table or DataFrame, values at evenly spaced positions
among the non-null ones; for an iterable of record batches, the first non-blank
values of the stream (iteration stops as soon as every string column has enough).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from loopml.data.models import PiiFinding
from loopml.errors import InvalidInputError, InvalidParamError

__all__ = ["PII_KINDS", "name_pii_reason", "scan_pii"]

#: every kind a finding can have
PII_KINDS = ("email", "phone", "payment_card", "ip_address", "name_like")

_EXAMPLES = 3  # masked examples per finding

# --- value patterns (RE2 syntax: pyarrow's regex engine; no look-arounds, no back-references) ----------------------

_EMAIL_RE = (
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)

_PHONE_RE = "|".join(
    [
        # international: +CC, then digit groups; an optional (0) or (area) group
        r"^\+\d{1,3}(?:[ .-]?\(\d{1,5}\))?(?:[ .-]?\d{1,8}){1,6}$",
        # national, area code in parentheses: (415) 555-0123
        r"^\(\d{1,5}\)[ .-]?\d{1,8}(?:[ .-]\d{1,8}){0,4}$",
        # national, three or more groups: 415-555-0123, 06 12 34 56 78, 020 7946 0958
        r"^\d{1,5}(?:[ .-]\d{1,8}){2,5}$",
        # national, trunk 0 + two groups: 030 12345678, 0412-345678
        r"^0\d{1,4}[ -]\d{4,8}$",
    ]
)
_NOT_PHONE_RE = "|".join(
    [
        r"^\d{4}[ ./-]\d{1,2}[ ./-]\d{1,2}$",  # dates, year first
        r"^\d{1,2}[ ./-]\d{1,2}[ ./-]\d{4}$",  # dates, year last
        r"^\d{1,3}(?:\.\d{1,3}){3}$",  # IPv4-shaped
        r"^\d{1,3}(?:\.\d{3}){2,}$",  # 1.234.567
        r"^\d{5}-\d{4}$",  # ZIP+4
        r"^\d{3}-\d{2}-\d{4}$",  # US SSN
    ]
)

_CARD_RE = r"^[1-9](?:[ -]?\d){12,18}$"
_CARD_WIDTH = 19

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = rf"(?:{_OCTET}\.){{3}}{_OCTET}"
_H = r"[0-9A-Fa-f]{1,4}"
_IPV6 = "|".join(
    [
        rf"(?:{_H}:){{7}}{_H}",
        rf"(?:{_H}:){{1,7}}:",
        rf"(?:{_H}:){{1,6}}:{_H}",
        rf"(?:{_H}:){{1,5}}(?::{_H}){{1,2}}",
        rf"(?:{_H}:){{1,4}}(?::{_H}){{1,3}}",
        rf"(?:{_H}:){{1,3}}(?::{_H}){{1,4}}",
        rf"(?:{_H}:){{1,2}}(?::{_H}){{1,5}}",
        rf"{_H}:(?::{_H}){{1,6}}",
        rf":(?:(?::{_H}){{1,7}}|:)",
        rf"(?:{_H}:){{6}}{_IPV4}",
        rf"::(?:[Ff]{{4}}(?::0{{1,4}})?:)?{_IPV4}",
        rf"(?:{_H}:){{1,5}}:{_IPV4}",
    ]
)
_IP_RE = rf"^(?:{_IPV4}|(?:{_IPV6})(?:%[0-9A-Za-z._-]+)?)$"

# --- column names ----------------------------------------------------------------------------------------------------

# what they are -> the words (lower case, joined) that say so
_NAME_LABELS: dict[str, str] = {
    "a person's name": (
        "firstname firstnames lastname lastnames surname surnames fullname givenname givennames familyname "
        "middlename middlenames maidenname nickname forename forenames username displayname "
        "customername clientname patientname personname contactname employeename membername studentname "
        "ownername holdername cardholder cardholdername accountholder accountholdername"
    ),
    "an e-mail address": "email emails emailaddress",
    "a phone number": (
        "phone phones phonenumber telephone tel telno mobilenumber mobilephone mobileno cellphone cellnumber "
        "msisdn fax faxnumber"
    ),
    "a postal address": "address addresses street streetaddress postcode postalcode zipcode",
    "a birth date": "dob birth birthdate birthday birthdates birthplace",
    "a government id": (
        "ssn socialsecurity socialsecuritynumber passport passportnumber passportno nationalid nationalidnumber "
        "taxid taxnumber driverlicense driverslicense drivinglicense driverlicence driverslicence drivinglicence"
    ),
    "a bank account": "iban bankaccount bankaccountnumber accountnumber",
    "a payment card": "creditcard creditcardnumber cardnumber ccnumber cvv cvc",
    "an IP address": "ip ipv4 ipv6 ipaddress",
}
_NAME_WORDS: dict[str, str] = {w: label for label, words in _NAME_LABELS.items() for w in words.split()}

# words that say the column is derived from an identifier, not the identifier itself
_DERIVED_WORDS = frozenset(
    "hash hashed sha1 sha256 sha512 md5 digest encrypted enc masked redacted anonymized anonymised pseudonymized "
    "pseudonymised salted tokenized tokenised count cnt counts length len is has verified valid validated "
    "missing present flag domain type format provider".split()
)
_COUNT_PREFIXES = frozenset({"n", "num", "nb", "number"})  # num_phones, n_emails (but phone_num is a phone)
_MAX_RUN = 4  # longest run of words joined for a look-up ("social security number" + 1)
_WORD_RE = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def _words(name: str) -> list[str]:
    return [w.lower() for w in _WORD_RE.findall(name)]


def name_pii_reason(name: str) -> str | None:
    """Why a column called ``name`` looks like a personal identifier, or ``None`` if it does not.

    >>> name_pii_reason("firstName")
    "column name 'firstName' suggests a person's name ('firstname')"
    >>> name_pii_reason("filename") is None and name_pii_reason("username_hash") is None
    True
    """
    words = _words(name)
    if not words:
        return None
    if words[0] in _COUNT_PREFIXES and len(words) > 1:
        return None
    for i in range(len(words)):
        for j in range(i + 1, min(i + _MAX_RUN + 1, len(words) + 1)):
            if "".join(words[i:j]) in _DERIVED_WORDS:
                return None
    if words in (["name"], ["names"]):
        return f"column name {name!r} suggests a person's name"
    best: str | None = None
    for i in range(len(words)):  # the longest run wins: ip_address is an IP address, not a postal one
        for j in range(i + 1, min(i + _MAX_RUN + 1, len(words) + 1)):
            joined = "".join(words[i:j])
            if joined in _NAME_WORDS and (best is None or len(joined) > len(best)):
                best = joined
    if best is None:
        return None
    return f"column name {name!r} suggests {_NAME_WORDS[best]} ({best!r})"


# --- sampling ----------------------------------------------------------------------------------------------------------


def _is_string_type(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        return _is_string_type(t.value_type)
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t))


def _spaced(n: int, k: int) -> np.ndarray[Any, np.dtype[np.int64]]:
    """``min(n, k)`` evenly spaced positions in ``range(n)``, first and last included."""
    if n <= k:
        return np.arange(n, dtype=np.int64)
    return np.linspace(0, n - 1, k).astype(np.int64)


def _clean(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Plain ``string`` array, whitespace trimmed, nulls and blanks dropped."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks else pa.array([], type=values.type)
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if not pa.types.is_string(values.type):
        values = values.cast(pa.string())
    values = pc.utf8_trim_whitespace(values)
    keep = pc.and_(pc.is_valid(values), pc.greater(pc.binary_length(values), 0))
    return pc.filter(values, keep)


def _sample_arrow(col: pa.ChunkedArray | pa.Array, sample_size: int) -> pa.Array:
    n = len(col)
    if pa.types.is_string_view(col.type):
        col = col.cast(pa.large_string())  # no take kernel for string_view (pyarrow 26)
    if col.null_count:
        valid = pc.indices_nonzero(pc.is_valid(col)).to_numpy()
        idx = valid[_spaced(len(valid), sample_size)]
    else:
        idx = _spaced(n, sample_size)
    return _clean(col.take(pa.array(idx)))


def _sample_pandas(s: pd.Series, sample_size: int) -> pa.Array | None:
    """The sample of a pandas column as strings, or ``None`` if it does not hold strings."""
    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        if not pd.api.types.is_string_dtype(dtype.categories.dtype):
            return None
    elif not pd.api.types.is_string_dtype(dtype):
        return None
    valid = np.flatnonzero(s.notna().to_numpy())
    picked = s.iloc[valid[_spaced(len(valid), sample_size)]]
    try:
        arr = pa.array(picked.astype(object).to_numpy(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None  # mixed types in an object column
    if not _is_string_type(arr.type):
        return None
    return _clean(arr)


@dataclass
class _Source:
    names: list[str]
    samples: dict[str, pa.Array]  # string-like columns only


def _from_table(table: pa.Table, sample_size: int) -> _Source:
    samples = {
        name: _sample_arrow(table.column(i), sample_size)
        for i, name in enumerate(table.column_names)
        if _is_string_type(table.schema.field(i).type)
    }
    return _Source(list(table.column_names), samples)


def _from_pandas(df: pd.DataFrame, sample_size: int) -> _Source:
    names: list[str] = []
    samples: dict[str, pa.Array] = {}
    for i in range(df.shape[1]):
        name = str(df.columns[i])
        names.append(name)
        sample = _sample_pandas(df.iloc[:, i], sample_size)
        if sample is not None:
            samples[name] = sample
    return _Source(names, samples)


def _from_batches(batches: Iterable[pa.RecordBatch], sample_size: int) -> _Source:
    it: Iterator[Any] = iter(batches)
    names: list[str] | None = None
    parts: dict[str, list[pa.Array]] = {}
    have: dict[str, int] = {}
    for batch in it:
        if not isinstance(batch, pa.RecordBatch):
            raise InvalidInputError(
                f"scan_pii: expected record batches in the iterable, got {type(batch).__name__}",
                got=type(batch).__name__,
            )
        if names is None:
            names = list(batch.schema.names)
            parts = {n: [] for i, n in enumerate(names) if _is_string_type(batch.schema.field(i).type)}
            have = dict.fromkeys(parts, 0)
        for name in parts:
            missing = sample_size - have[name]
            if missing > 0:
                values = _clean(batch.column(name))[:missing]
                parts[name].append(values)
                have[name] += len(values)
        if all(v >= sample_size for v in have.values()):
            break  # enough: leave the rest of the stream unread
    if names is None:
        return _Source([], {})
    samples = {n: pa.concat_arrays(p) if p else pa.array([], type=pa.string()) for n, p in parts.items()}
    return _Source(names, samples)


# --- matching ----------------------------------------------------------------------------------------------------------


def _mask(arr: pa.Array | pa.ChunkedArray) -> np.ndarray[Any, np.dtype[np.bool_]]:
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=bool)


def _luhn_ok(digits: pa.Array) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Luhn check of digit-only strings of at most 19 digits, one numpy pass over the digit matrix."""
    n = len(digits)
    if n == 0:
        return np.zeros(0, dtype=bool)
    # left-padding with zeros keeps the Luhn sum (it counts from the right) and gives every row 19 bytes
    padded = pc.utf8_lpad(digits, width=_CARD_WIDTH, padding="0")
    if isinstance(padded, pa.ChunkedArray):
        padded = padded.combine_chunks()
    offsets = np.frombuffer(padded.buffers()[1], dtype=np.int32)[padded.offset : padded.offset + n + 1]
    data = np.frombuffer(padded.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    m = data.reshape(n, _CARD_WIDTH).astype(np.int16) - ord("0")
    # from the right, every second digit is doubled: with 19 columns those are the odd column indices
    doubled = m[:, 1::2] * 2
    doubled -= 9 * (doubled > 9)
    total = m[:, 0::2].sum(axis=1) + doubled.sum(axis=1)
    return np.asarray(total % 10 == 0)


def _match(values: pa.Array) -> dict[str, np.ndarray[Any, np.dtype[np.bool_]]]:
    """Per kind, which of ``values`` (clean strings) are of that kind."""
    n = len(values)
    email = _mask(pc.match_substring_regex(values, _EMAIL_RE))

    card = np.zeros(n, dtype=bool)
    card_shape = _mask(pc.match_substring_regex(values, _CARD_RE))
    if card_shape.any():
        where = np.flatnonzero(card_shape)
        digits = pc.replace_substring_regex(values.take(pa.array(where)), r"[ -]", "")
        card[where] = _luhn_ok(digits)

    phone = _mask(pc.match_substring_regex(values, _PHONE_RE))
    if phone.any():
        where = np.flatnonzero(phone)
        cand = values.take(pa.array(where))
        lengths = pc.utf8_length(pc.replace_substring_regex(cand, r"\D", ""))
        ndigits = np.asarray(lengths.to_numpy(zero_copy_only=False))
        not_phone = _mask(pc.match_substring_regex(cand, _NOT_PHONE_RE))
        phone[where] = (ndigits >= 7) & (ndigits <= 15) & ~not_phone
        phone &= ~card

    ip = _mask(pc.match_substring_regex(values, _IP_RE))
    return {"email": email, "phone": phone, "payment_card": card, "ip_address": ip}


# --- masking -----------------------------------------------------------------------------------------------------------


def _mask_email(v: str) -> str:
    local, _, domain = v.rpartition("@")
    return f"{local[:1]}***@{domain}"


def _mask_digits(v: str, keep: int) -> str:
    """Every digit but the last ``keep`` becomes ``*``; separators and ``+`` stay."""
    total = sum(c.isdigit() for c in v)
    out, seen = [], 0
    for c in v:
        if c.isdigit():
            seen += 1
            out.append(c if seen > total - keep else "*")
        else:
            out.append(c)
    return "".join(out)


def _mask_ip(v: str) -> str:
    if ":" in v:
        head = v.split(":", 1)[0]
        return f"{head}:****" if head else "::****"
    return v.split(".", 1)[0] + ".*.*.*"


def _masked(kind: str, v: str) -> str:
    if kind == "email":
        return _mask_email(v)
    if kind == "payment_card":
        return _mask_digits(v, 4)
    if kind == "phone":
        return _mask_digits(v, 2)
    return _mask_ip(v)


_KIND_TEXT = {
    "email": "e-mail addresses",
    "phone": "phone numbers",
    "payment_card": "payment card numbers (Luhn-valid)",
    "ip_address": "IP addresses",
}


# --- the scan ----------------------------------------------------------------------------------------------------------


def scan_pii(
    data: pa.Table | pd.DataFrame | Iterable[pa.RecordBatch],
    *,
    sample_size: int = 10_000,
    min_match_rate: float = 0.5,
) -> list[PiiFinding]:
    """Columns of ``data`` that look like they hold personal data, sorted by column then kind.

    Args:
        data: a pyarrow Table or RecordBatch, a pandas DataFrame, or an iterable of record
            batches (for example a ``pyarrow.RecordBatchReader``; read only until every
            string column has ``sample_size`` values).
        sample_size: non-blank values matched per string-like column.
        min_match_rate: share of sampled values of a kind from which a column is reported,
            in ``(0, 1]``.

    Returns:
        One :class:`~loopml.data.models.PiiFinding` per (column, kind): ``email``,
        ``phone``, ``payment_card``, ``ip_address`` from the values (``match_rate`` is the
        share of the sample; ``examples`` are masked), ``name_like`` from the column name
        (``match_rate`` 1.0, no examples). See the module documentation for what matches.

    Raises:
        InvalidParamError: ``sample_size`` < 1 or ``min_match_rate`` outside ``(0, 1]``.
        InvalidInputError: ``data`` is none of the accepted types.
    """
    if isinstance(sample_size, bool) or not isinstance(sample_size, int) or sample_size < 1:
        raise InvalidParamError(
            f"scan_pii: sample_size must be a positive integer, got {sample_size!r}", param="sample_size"
        )
    if not 0.0 < float(min_match_rate) <= 1.0:
        raise InvalidParamError(
            f"scan_pii: min_match_rate must be in (0, 1], got {min_match_rate!r}", param="min_match_rate"
        )
    source: _Source
    if isinstance(data, pa.Table):
        source = _from_table(data, sample_size)
    elif isinstance(data, pa.RecordBatch):
        source = _from_table(pa.Table.from_batches([data]), sample_size)
    elif isinstance(data, pd.DataFrame):
        source = _from_pandas(data, sample_size)
    elif isinstance(data, Iterable) and not isinstance(data, str | bytes | pd.Series | pa.Array | pa.ChunkedArray):
        source = _from_batches(data, sample_size)
    else:
        raise InvalidInputError(
            "scan_pii: data must be a pyarrow Table, a pandas DataFrame or an iterable of pyarrow RecordBatches, "
            f"got {type(data).__name__}",
            got=type(data).__name__,
        )

    findings: list[PiiFinding] = []
    for name in source.names:
        reason = name_pii_reason(name)
        if reason is not None:
            findings.append(PiiFinding(column=name, kind="name_like", match_rate=1.0, reason=reason))
    for name, values in source.samples.items():
        n = len(values)
        if n == 0:
            continue
        for kind, hit in _match(values).items():
            count = int(hit.sum())
            rate = count / n
            if count == 0 or rate < min_match_rate:
                continue
            examples: list[str] = []
            for v in values.take(pa.array(np.flatnonzero(hit)[: 20 * _EXAMPLES])).to_pylist():
                masked = _masked(kind, v)
                if masked not in examples:
                    examples.append(masked)
                if len(examples) == _EXAMPLES:
                    break
            findings.append(
                PiiFinding(
                    column=name,
                    kind=kind,
                    match_rate=rate,
                    examples=examples,
                    reason=f"{count} of {n} sampled values ({rate:.0%}) look like {_KIND_TEXT[kind]}",
                )
            )
    findings.sort(key=lambda f: (f.column, f.kind))
    return findings
