"""``rpc_runtime.codec`` on its own: the readers and writers generated code
composes, and the messages and paths of what they refuse (the generated
types are tested in ``test_generated_types.py``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rpc_runtime import CallOptions, DecodeError, EncodeError, codec


@pytest.mark.parametrize(
    ("width", "lo", "hi"),
    [(w, lo, hi) for w, (lo, hi) in codec.INT_RANGES.items()],
)
def test_every_integer_width_takes_its_range_and_nothing_past_it(width: str, lo: int, hi: int) -> None:
    read = getattr(codec, f"read_{width}")
    write = getattr(codec, f"write_{width}")
    for ok in (lo, hi, 0):
        assert read(ok, "n") == ok
        assert write(ok, "n") == ok
    for bad in (lo - 1, hi + 1):
        with pytest.raises(DecodeError, match=f"out of range for {width}") as info:
            read(bad, "n")
        assert info.value.path == "n"
        with pytest.raises(EncodeError, match=f"out of range for {width}"):
            write(bad, "n")
    for not_int in (True, 1.0, "5", None, [1]):
        with pytest.raises(DecodeError, match=f"expected {width}"):
            read(not_int, "n")
        with pytest.raises(EncodeError):
            write(not_int, "n")


def test_floats_take_ints_and_refuse_bool_and_non_finite() -> None:
    assert codec.read_f64(3, "") == 3.0 and isinstance(codec.read_f64(3, ""), float)
    assert codec.write_f64(-7, "") == -7.0 and json.dumps(codec.write_f64(-7, "")) == "-7.0"
    with pytest.raises(DecodeError, match="expected f64"):
        codec.read_f64(False, "")
    for bad in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(EncodeError, match="not a JSON number"):
            codec.write_f64(bad, "x")
    assert codec.write_f32(3.4028234663852886e38, "") == 3.4028234663852886e38
    with pytest.raises(EncodeError, match="out of range for f32"):
        codec.write_f32(3.5e38, "")


def test_bytes_are_strict_standard_base64() -> None:
    assert codec.write_bytes(bytes([0, 1, 2, 0xFB, 0xFF])) == "AAEC+/8="
    assert codec.read_bytes("AAEC+/8=") == bytes([0, 1, 2, 0xFB, 0xFF])
    assert codec.read_bytes("") == b""
    for bad in ("AAEC-_8=", "AAEC+/8", "AA EC+/8=", "AAEC+/8=\n", "AB==", "A==="):
        with pytest.raises(DecodeError, match="invalid base64"):
            codec.read_bytes(bad, "b")
    with pytest.raises(DecodeError, match="expected a base64 string"):
        codec.read_bytes([0, 1], "b")
    with pytest.raises(EncodeError, match="expected bytes"):
        codec.write_bytes("AAEC", "b")  # type: ignore[arg-type]


def test_containers_name_the_element_in_errors() -> None:
    read = codec.list_reader(codec.map_reader(codec.optional_reader(codec.read_u8)))
    assert read([{"a": 1, "b": None}], "xs") == [{"a": 1, "b": None}]
    with pytest.raises(DecodeError) as info:
        read([{}, {"a b": 256}], "xs")
    assert info.value.path == 'xs[1]["a b"]'
    write = codec.map_writer(codec.list_writer(codec.write_i8))
    assert list(write({"b": [1], "a": []}, "")) == ["a", "b"]
    with pytest.raises(EncodeError) as err:
        write({"a": [1, 200]}, "m")
    assert err.value.path == 'm["a"][1]'
    with pytest.raises(EncodeError, match="map keys are strings"):
        codec.map_writer(codec.write_i8)({1: 1}, "")  # type: ignore[dict-item]
    with pytest.raises(EncodeError, match="expected a list"):
        codec.list_writer(codec.write_str)("abc", "")


def test_fields_absent_null_and_json() -> None:
    obj: dict[str, Any] = {"a": 1, "n": None}
    assert codec.field(obj, "a", "p", codec.read_i32) == 1
    with pytest.raises(DecodeError, match="missing field `b`") as info:
        codec.field(obj, "b", "p", codec.read_i32)
    assert info.value.path == "p"
    with pytest.raises(DecodeError, match="invalid type: null") as info:
        codec.field(obj, "n", "p", codec.read_i32)
    assert info.value.path == "p.n"
    assert codec.optional_field(obj, "n", "p", codec.read_i32) is None
    assert codec.optional_field(obj, "zz", "p", codec.read_i32) is None
    assert codec.json_field(obj, "n", "p") is None
    with pytest.raises(DecodeError, match="missing field `zz`"):
        codec.json_field(obj, "zz", "p")
    out: dict[str, Any] = {}
    codec.put(out, "x", None)
    codec.put(out, "y", 0)
    assert out == {"y": 0}


def test_read_variant_is_exact_about_tags() -> None:
    def read(value: Any) -> tuple[str, Any]:
        return codec.read_variant(value, "v", "E", ("A",), ("B",))

    assert read("A") == ("A", None)
    assert read({"A": None}) == ("A", None)
    assert read({"B": [1]}) == ("B", [1])
    for bad, message in [
        ("a", "unknown variant `a` of E, expected one of `A`, `B`"),
        ({"C": 1}, "unknown variant `C`"),
        ("B", "invalid type: unit variant"),
        ({"A": 1}, "expected unit variant"),
        ({"A": None, "B": 1}, "an object with 2 keys"),
        ({}, "an object with 0 keys"),
        (1, "expected E"),
    ]:
        with pytest.raises(DecodeError, match=message):
            read(bad)


def test_results_and_options() -> None:
    assert codec.result_reader(codec.read_i64)(5) == 5
    with pytest.raises(DecodeError, match="expected i64"):
        codec.result_reader(codec.read_i64)("5")
    assert codec.result_writer(codec.optional_writer(codec.write_str))(None) is None
    codec.no_result({"anything": 1})
    base = CallOptions(timeout=1.0, metadata={"a": "1"})
    merged = codec.options_with(base, delay=2.0, metadata={"b": "2"})
    assert (merged.timeout, merged.delay, dict(merged.metadata or {})) == (1.0, 2.0, {"a": "1", "b": "2"})
    assert codec.options_with(None, idempotency_key="k").idempotency_key == "k"


def test_json_values_are_checked_when_written() -> None:
    assert codec.write_json({"a": [1, None]}, "") == {"a": [1, None]}
    for bad in ({1, 2}, float("nan"), object()):
        with pytest.raises(EncodeError, match="not a JSON value"):
            codec.write_json(bad, "j")
