"""loopml.data.pii: which columns look like personal data, and what the findings show."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from loopml.data import pii
from loopml.data.models import PiiFinding
from loopml.data.pii import PII_KINDS, name_pii_reason, scan_pii
from loopml.errors import InvalidInputError, InvalidParamError

EMAILS = ["john.doe@example.com", "a@b.io", "Mary_Sue+tag@mail.example.org", "x.y-z@sub.domain.co.uk"]
PHONES = [
    "+1 415 555 0123",
    "+14155550123",
    "+44 20 7946 0958",
    "+49 (0)30 1234567",
    "+33 6 12 34 56 78",
    "(415) 555-0123",
    "415-555-0123",
    "415.555.0123",
    "06 12 34 56 78",
    "020 7946 0958",
    "030 12345678",
    "612 345 678",
]
# Luhn-valid test numbers of the card networks, plain and grouped
CARDS = [
    "4111111111111111",
    "4111 1111 1111 1111",
    "4111-1111-1111-1111",
    "5555555555554444",
    "378282246310005",
    "3782 822463 10005",
    "6011111111111117",
    "4222222222222",
]
IPS = [
    "192.168.1.1",
    "10.0.0.255",
    "8.8.8.8",
    "2001:db8::1",
    "::1",
    "fe80::1%eth0",
    "::ffff:192.168.1.1",
    "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
]


def kinds(findings: list[PiiFinding], column: str) -> set[str]:
    return {f.kind for f in findings if f.column == column}


def one(findings: list[PiiFinding], column: str, kind: str) -> PiiFinding:
    (f,) = [f for f in findings if f.column == column and f.kind == kind]
    return f


# --- each kind is found -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "kind"),
    [(EMAILS, "email"), (PHONES, "phone"), (CARDS, "payment_card"), (IPS, "ip_address")],
)
def test_each_kind_is_found_in_a_neutrally_named_column(values: list[str], kind: str) -> None:
    findings = scan_pii(pa.table({"col": values}))
    assert [(f.column, f.kind) for f in findings] == [("col", kind)]
    f = findings[0]
    assert f.match_rate == 1.0
    assert f.examples
    assert f"{len(values)} of {len(values)}" in f.reason


@pytest.mark.parametrize("value", PHONES)
def test_every_phone_format_matches_alone(value: str) -> None:
    assert kinds(scan_pii(pa.table({"c": [value]})), "c") == {"phone"}


@pytest.mark.parametrize("value", CARDS)
def test_every_test_card_number_matches_alone(value: str) -> None:
    assert kinds(scan_pii(pa.table({"c": [value]})), "c") == {"payment_card"}


@pytest.mark.parametrize("value", IPS)
def test_every_ip_address_matches_alone(value: str) -> None:
    assert kinds(scan_pii(pa.table({"c": [value]})), "c") == {"ip_address"}


def test_invalid_luhn_card_numbers_are_not_cards() -> None:
    bad = ["4111111111111112", "4111 1111 1111 1112", "5555555555554445", "378282246310006"]
    assert scan_pii(pa.table({"c": bad})) == []


def test_a_column_of_random_16_digit_ids_is_not_a_card_column() -> None:
    rng = np.random.default_rng(7)
    ids = [str(v) for v in rng.integers(10**15, 10**16 - 1, size=2000)]
    findings = scan_pii(pa.table({"c": ids}))
    assert findings == []  # about 10% pass Luhn by chance: well below the 0.5 default
    (low,) = scan_pii(pa.table({"c": ids}), min_match_rate=0.01)
    assert low.kind == "payment_card" and 0.05 < low.match_rate < 0.15


def test_luhn_matches_a_per_value_reference() -> None:
    def luhn(s: str) -> bool:
        total = 0
        for i, ch in enumerate(reversed(s)):
            d = int(ch)
            if i % 2:
                d = d * 2 - 9 if d > 4 else d * 2
            total += d
        return total % 10 == 0

    rng = np.random.default_rng(3)
    lengths = rng.integers(13, 20, size=3000)
    values = ["".join(map(str, rng.integers(0, 10, size=n))) for n in lengths]
    got = pii._luhn_ok(pa.array(values))
    assert got.tolist() == [luhn(v) for v in values]
    assert got.any() and not got.all()


# --- what must not be found ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(["12345678", "4155550123", "2024", "1999", "31415926535"], id="plain digit strings"),
        pytest.param(["3.14159", "1234.5678", "-1234567", "1e-07", "1.234.567"], id="decimals"),
        pytest.param(["2024-01-15", "15.01.2024", "01/15/2024", "2024/01/15", "2024-01-15 10:30:00"], id="dates"),
        pytest.param(["10:30:00", "23:59", "00:1a:2b:3c:4d:5e"], id="times and MAC addresses"),
        pytest.param(["AB-1234-567", "SKU-000123", "X12-34-56", "ISBN 978-3-16"], id="product codes"),
        pytest.param(["94105-1234", "10115", "SW1A 1AA"], id="postal codes"),
        pytest.param(["123-45-6789", "078-05-1120"], id="US SSNs are not phones"),
        pytest.param(
            ["hello world", "Call me at home tomorrow", "The quick brown fox", "mail me", "a@b"], id="free text"
        ),
        pytest.param(["1.2.3", "2.10.0", "v1.2.3.4"], id="versions"),
        pytest.param(["555-0123", "1000-2000"], id="two short digit groups"),
    ],
)
def test_values_that_are_not_pii(values: list[str]) -> None:
    assert scan_pii(pa.table({"c": values}), min_match_rate=0.01) == []


def test_numeric_boolean_and_temporal_columns_are_not_pattern_scanned() -> None:
    n = 1000
    table = pa.table(
        {
            "ints": pa.array(np.arange(4_111_111_111_111_111, 4_111_111_111_111_111 + n, dtype=np.int64)),
            "floats": np.linspace(1e6, 1e7, n),
            "years": np.full(n, 2024, dtype=np.int32),
            "flags": np.arange(n) % 2 == 0,
            "when": pa.array(np.arange(n).astype("datetime64[s]")),
        }
    )
    assert scan_pii(table) == []


def test_min_match_rate_is_the_threshold() -> None:
    values = EMAILS[:3] + ["not an email"] * 3  # 50% e-mails
    assert kinds(scan_pii(pa.table({"c": values})), "c") == {"email"}
    assert scan_pii(pa.table({"c": values}), min_match_rate=0.51) == []
    (f,) = scan_pii(pa.table({"c": values}), min_match_rate=0.1)
    assert f.match_rate == pytest.approx(0.5)


def test_nulls_and_blank_strings_are_not_counted() -> None:
    values = [None, "", "   ", "john@example.com", None, " a@b.io "]
    (f,) = scan_pii(pa.table({"c": pa.array(values, type=pa.string())}))
    assert f.kind == "email" and f.match_rate == 1.0
    assert "2 of 2" in f.reason
    assert scan_pii(pa.table({"c": pa.array([None, ""], type=pa.string())})) == []


# --- names ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "name",
        "Name",
        "first_name",
        "firstName",
        "FirstName",
        "LAST_NAME",
        "surname",
        "full-name",
        "customerName",
        "username",
        "nickname",
        "email",
        "e_mail",
        "E-Mail",
        "emailAddress",
        "phone",
        "phone_number",
        "homePhone",
        "mobile_number",
        "ssn",
        "passport_no",
        "address",
        "billingAddress",
        "street",
        "zip_code",
        "dob",
        "DOB",
        "date_of_birth",
        "birthDate",
        "iban",
        "IBAN",
        "account_number",
        "credit_card_number",
        "ip_address",
        "client_ip",
        "ipv4",
        "national_id",
        "drivers_license",
    ],
)
def test_personal_column_names(name: str) -> None:
    assert name_pii_reason(name) is not None
    findings = scan_pii(pa.table({name: [1, 2, 3]}))
    assert [(f.column, f.kind, f.match_rate, f.examples) for f in findings] == [(name, "name_like", 1.0, [])]
    assert repr(name) in findings[0].reason


@pytest.mark.parametrize(
    "name",
    [
        "filename",
        "file_name",
        "fileName",
        "product_name",
        "hostname",
        "host_name",
        "model_name",
        "column_names",
        "username_hash",
        "email_sha256",
        "hashed_email",
        "phone_encrypted",
        "has_email",
        "is_phone_verified",
        "email_verified",
        "email_domain",
        "name_length",
        "num_phones",
        "n_emails",
        "address_type",
        "user_id",
        "age",
        "amount",
        "shipping_cost",
        "tip",
        "hotel",
        "zipfile",
        "x",
    ],
)
def test_column_names_that_are_not_personal(name: str) -> None:
    assert name_pii_reason(name) is None
    assert scan_pii(pa.table({name: [1, 2, 3]})) == []


def test_the_longest_matching_words_name_the_reason() -> None:
    assert "IP address" in (name_pii_reason("ip_address") or "")
    assert "e-mail" in (name_pii_reason("email_address") or "")
    assert "postal address" in (name_pii_reason("home_address") or "")


def test_a_named_column_with_matching_values_has_both_findings_sorted() -> None:
    table = pa.table(
        {
            "zeta": EMAILS,
            "email": EMAILS,
            "amount": [1.0, 2.0, 3.0, 4.0],
            "card": CARDS[:4],
            "first_name": ["Ann", "Bob", "Cy", "Di"],
        }
    )
    findings = scan_pii(table)
    assert [(f.column, f.kind) for f in findings] == [
        ("card", "payment_card"),
        ("email", "email"),
        ("email", "name_like"),
        ("first_name", "name_like"),
        ("zeta", "email"),
    ]
    assert all(f.kind in PII_KINDS for f in findings)


# --- masking ---------------------------------------------------------------------------------------------------------


def test_examples_are_masked_as_documented() -> None:
    findings = scan_pii(
        pa.table(
            {
                "a": ["john@example.com"],
                "b": ["4111 1111 1111 1111"],
                "c": ["4111111111111111"],
                "d": ["+1 415-555-0123"],
                "e": ["192.168.1.1"],
                "f": ["2001:db8::1"],
            }
        )
    )
    examples = {f.column: f.examples for f in findings}
    assert examples == {
        "a": ["j***@example.com"],
        "b": ["**** **** **** 1111"],
        "c": ["************1111"],
        "d": ["+* ***-***-**23"],
        "e": ["192.*.*.*"],
        "f": ["2001:****"],
    }


@pytest.mark.parametrize("values", [EMAILS, PHONES, CARDS, IPS])
def test_examples_never_contain_a_whole_value(values: list[str]) -> None:
    (f,) = scan_pii(pa.table({"c": values}))
    assert 1 <= len(f.examples) <= 3
    for example in f.examples:
        for v in values:
            assert v not in example
        assert "*" in example


# --- inputs and sampling ---------------------------------------------------------------------------------------------


def test_pandas_record_batches_and_arrow_string_types_agree() -> None:
    df = pd.DataFrame(
        {
            "e": EMAILS * 3,
            "p": pd.Series((PHONES * 3)[:12], dtype="string"),
            "cat": pd.Categorical((IPS * 3)[:12]),
            "obj": pd.Series(EMAILS * 3, dtype=object),
            "mixed": pd.Series([1, "a@b.io", 2.5, None] * 3, dtype=object),
            "num": np.arange(12.0),
        }
    )
    expected = [("cat", "ip_address"), ("e", "email"), ("obj", "email"), ("p", "phone")]
    from_pandas = scan_pii(df)
    assert [(f.column, f.kind) for f in from_pandas] == expected
    table = pa.Table.from_pandas(df.drop(columns=["mixed"]), preserve_index=False)
    assert [(f.column, f.kind) for f in scan_pii(table)] == expected
    assert [(f.column, f.kind) for f in scan_pii(table.to_batches(max_chunksize=5))] == expected
    assert [(f.column, f.kind) for f in scan_pii(table.to_reader())] == expected
    assert [(f.column, f.kind) for f in scan_pii(table.to_batches()[0])] == expected
    large = pa.table({"e": pa.array(EMAILS, type=pa.large_string()), "v": pa.array(EMAILS, type=pa.string_view())})
    assert [(f.column, f.kind) for f in scan_pii(large)] == [("e", "email"), ("v", "email")]


def test_non_string_column_names_from_pandas() -> None:
    df = pd.DataFrame({0: EMAILS, 1: [1, 2, 3, 4]})
    assert [(f.column, f.kind) for f in scan_pii(df)] == [("0", "email")]


def test_empty_inputs() -> None:
    assert scan_pii(pa.table({"email": pa.array([], type=pa.string())})) == [
        PiiFinding(column="email", kind="name_like", match_rate=1.0, reason=name_pii_reason("email") or "")
    ]
    assert scan_pii([]) == []
    assert scan_pii(pd.DataFrame()) == []


def test_a_stream_is_read_only_until_every_string_column_has_its_sample() -> None:
    served = []

    def batches() -> Iterator[pa.RecordBatch]:
        for i in range(100):
            served.append(i)
            yield pa.record_batch({"e": [f"u{i}.{j}@example.com" for j in range(10)], "x": list(range(10))})

    (f,) = scan_pii(batches(), sample_size=25)
    assert f.kind == "email" and "25 of 25" in f.reason
    assert served == [0, 1, 2]


def test_a_million_row_column_scans_only_the_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    n = 1_000_000
    emails = pc.binary_join_element_wise(pa.array(np.arange(n).astype(str)), pa.scalar("@example.com"), "")
    table = pa.table({"contact": emails, "x": np.zeros(n)})
    seen: list[int] = []
    real = pc.match_substring_regex

    def spy(values: Any, pattern: str, **kw: Any) -> Any:
        seen.append(len(values))
        return real(values, pattern, **kw)

    monkeypatch.setattr(pc, "match_substring_regex", spy)
    (f,) = scan_pii(table, sample_size=5000)
    assert (f.column, f.kind, f.match_rate) == ("contact", "email", 1.0)
    assert seen and max(seen) <= 5000
    assert "5000 of 5000" in f.reason


def test_the_sample_is_spread_over_the_whole_column() -> None:
    # e-mails only in the second half: a head-of-column sample would find none
    values = ["plain text"] * 50_000 + ["a@example.com"] * 50_000
    (f,) = scan_pii(pa.table({"c": values}), sample_size=1000, min_match_rate=0.4)
    assert f.match_rate == pytest.approx(0.5, abs=0.01)


def test_nulls_are_skipped_when_sampling() -> None:
    values = pa.chunked_array([pa.array([None] * 5000, type=pa.string()), pa.array(EMAILS * 10)])
    (f,) = scan_pii(pa.table({"c": values}), sample_size=10)
    assert f.kind == "email" and "10 of 10" in f.reason


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"sample_size": 0}, "sample_size"),
        ({"sample_size": 2.5}, "sample_size"),
        ({"min_match_rate": 0.0}, "min_match_rate"),
        ({"min_match_rate": 1.5}, "min_match_rate"),
    ],
)
def test_bad_parameters(kwargs: dict[str, float], param: str) -> None:
    with pytest.raises(InvalidParamError) as exc:
        scan_pii(pa.table({"c": ["x"]}), **kwargs)  # type: ignore[arg-type]
    assert exc.value.details["param"] == param


@pytest.mark.parametrize("data", ["a@b.io", 42, pd.Series(EMAILS), [1, 2]])
def test_bad_data(data: Any) -> None:
    with pytest.raises(InvalidInputError):
        scan_pii(data)
