"""The generated Python types read and write exactly the JSON of
docs/PROTOCOL.md, "How schema types map to JSON": the cases of
build-examples/everything/tests/json_mapping.rs (the Rust side's pins), run
on modules generated from schema/everything.rpc and schema/calculator.rpc by
the real ``rpc-codegen`` binary (``$RPC_CODEGEN``, else
``<repo>/target/debug/rpc-codegen``, built with cargo when missing).

One difference is inherent: a struct field given twice in the JSON text is
refused by the Rust reader (``duplicate field``) but cannot be seen here,
since ``json.loads`` has already kept the last one (the generated readers
take parsed JSON).
"""

from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import pytest

from rpc_runtime import DecodeError, EncodeError
from rpc_runtime.build import generate

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "rpcgen_types"


def codegen_binary() -> Path:
    """The ``rpc-codegen`` binary under test, built when missing."""
    env = os.environ.get("RPC_CODEGEN")
    if env:
        return Path(env)
    binary = REPO / "target" / "debug" / "rpc-codegen"
    if not binary.is_file():
        subprocess.run(
            ["cargo", "build", "-q", "-p", "rpc-codegen", "--features", "cli"],
            cwd=REPO,
            check=True,
        )
    return binary


@pytest.fixture(scope="module")
def gen(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModuleType]:
    root = tmp_path_factory.mktemp("generated")
    out = root / PACKAGE
    for schema in ("calculator.rpc", "everything.rpc"):
        generate(REPO / "schema" / schema, out, codegen=codegen_binary())
    sys.path.insert(0, str(root))
    try:
        return {
            name: importlib.import_module(f"{PACKAGE}.{name}")
            for name in ("calculator", "common", "everything")
        }
    finally:
        sys.path.remove(str(root))


def refused(read: Callable[[Any], Any], value: Any) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        read(value)
    return info.value


def scalars_json() -> dict[str, Any]:
    return {
        "flag": True, "tiny": -128, "small": -32768, "medium": -2147483648,
        "large": -(2**63), "byte": 255, "word": 65535, "dword": 4294967295,
        "qword": 18446744073709551615, "single": 1.5, "double": -2.25,
        "text": "héllo", "blob": "AAEC/w==", "extra": {"any": [1, None]},
    }  # fmt: skip


def scalars_with(field: str, value: Any) -> dict[str, Any]:
    doc = scalars_json()
    doc[field] = value
    return doc


def test_integers_are_json_numbers_checked_against_their_range(gen: dict[str, ModuleType]) -> None:
    Scalars = gen["everything"].Scalars
    scalars = Scalars.from_json(scalars_json())
    assert scalars.qword == 2**64 - 1
    assert scalars.large == -(2**63)
    written = scalars.to_json()
    assert written["qword"] == 18446744073709551615
    assert written["tiny"] == -128
    assert json.loads(json.dumps(written)) == scalars_json()

    for field, value, width in [
        ("tiny", 128, "i8"),
        ("tiny", -129, "i8"),
        ("small", 32768, "i16"),
        ("small", -32769, "i16"),
        ("medium", 2147483648, "i32"),
        ("medium", -2147483649, "i32"),
        ("large", 9223372036854775808, "i64"),
        ("large", -9223372036854775809, "i64"),
        ("byte", 256, "u8"),
        ("byte", -1, "u8"),
        ("word", 65536, "u16"),
        ("word", -1, "u16"),
        ("dword", 4294967296, "u32"),
        ("dword", -1, "u32"),
        ("qword", 18446744073709551616, "u64"),
        ("qword", -1, "u64"),
    ]:
        err = refused(Scalars.from_json, scalars_with(field, value))
        assert err.path == field
        assert f"out of range for {width}" in str(err), (field, value, err)
        # The writer refuses the same values before anything is sent.
        bad = Scalars.from_json(scalars_json())
        setattr(bad, field, value)
        with pytest.raises(EncodeError, match=f"out of range for {width}"):
            bad.to_json()


def test_an_integer_is_refused_when_written_with_a_fraction_or_as_a_string(
    gen: dict[str, ModuleType],
) -> None:
    Scalars = gen["everything"].Scalars
    err = refused(Scalars.from_json, scalars_with("medium", json.loads("1.0")))
    assert "invalid type: floating point `1.0`, expected i32" in str(err)
    err = refused(Scalars.from_json, scalars_with("medium", json.loads("1e3")))
    assert "invalid type: floating point `1000.0`, expected i32" in str(err)
    err = refused(Scalars.from_json, scalars_with("qword", "5"))
    assert 'invalid type: string "5"' in str(err)
    # bool is an int in Python, never in the schema.
    err = refused(Scalars.from_json, scalars_with("tiny", True))
    assert "invalid type: boolean `true`, expected i8" in str(err)
    bad = Scalars.from_json(scalars_json())
    bad.tiny = True
    with pytest.raises(EncodeError, match="expected an int"):
        bad.to_json()
    bad = Scalars.from_json(scalars_json())
    bad.medium = 1.0
    with pytest.raises(EncodeError, match="expected an int"):
        bad.to_json()


def test_floats_accept_whole_numbers_and_write_them_with_a_fraction(
    gen: dict[str, ModuleType],
) -> None:
    Scalars = gen["everything"].Scalars
    doc = scalars_with("single", 3)
    doc["double"] = -7
    scalars = Scalars.from_json(doc)
    assert (scalars.single, scalars.double) == (3.0, -7.0)
    assert isinstance(scalars.double, float)
    scalars.single = 1.1
    text = json.dumps(scalars.to_json(), separators=(",", ":"))
    assert '"single":1.1,' in text
    assert '"double":-7.0,' in text
    assert "floating point" not in str(refused(Scalars.from_json, scalars_with("double", True)))


def test_a_float_that_is_not_finite_is_refused_both_ways(gen: dict[str, ModuleType]) -> None:
    # JSON has no NaN or infinity. A Rust writer sends `null`, which no float
    # field reads; the Python writer refuses before sending.
    Scalars = gen["everything"].Scalars
    for field in ("single", "double"):
        err = refused(Scalars.from_json, scalars_with(field, None))
        assert err.path == field
        scalars = Scalars.from_json(scalars_json())
        setattr(scalars, field, math.nan)
        with pytest.raises(EncodeError, match="not a JSON number"):
            scalars.to_json()
    scalars = Scalars.from_json(scalars_json())
    scalars.single = 1e300
    with pytest.raises(EncodeError, match="out of range for f32"):
        scalars.to_json()


def test_booleans_and_strings_are_strict(gen: dict[str, ModuleType]) -> None:
    Scalars = gen["everything"].Scalars
    assert "expected a boolean" in str(refused(Scalars.from_json, scalars_with("flag", 1)))
    assert "expected a boolean" in str(refused(Scalars.from_json, scalars_with("flag", "true")))
    assert "expected a string" in str(refused(Scalars.from_json, scalars_with("text", 5)))
    text = json.dumps(scalars_with("text", "tab\t\U0001f600"))
    assert Scalars.from_json(json.loads(text)).text == "tab\t\U0001f600"


def test_bytes_are_standard_padded_base64(gen: dict[str, ModuleType]) -> None:
    everything = gen["everything"]
    raw = everything._DrawingRawParams
    params = raw(blob=bytes([0, 1, 2, 0xFB, 0xFF]), doc=None)
    assert params.to_json() == {"blob": "AAEC+/8=", "doc": None}
    assert raw.from_json({"blob": "AAEC+/8=", "doc": 1}).blob == bytes([0, 1, 2, 0xFB, 0xFF])
    assert raw.from_json({"blob": "", "doc": 1}).blob == b""
    for bad in ["AAEC-_8=", "AAEC+/8", "AA EC+/8=", [0, 1], "AAEC+/9="]:
        err = refused(raw.from_json, {"blob": bad, "doc": 1})
        assert err.path == "blob"
        assert "invalid base64" in str(err) or "invalid type" in str(err), (bad, err)


def test_json_fields_take_any_value_including_null(gen: dict[str, ModuleType]) -> None:
    Scalars = gen["everything"].Scalars
    values: list[Any] = [None, 1, "s", [1, {"a": None}], {}]
    for value in values:
        scalars = Scalars.from_json(scalars_with("extra", value))
        assert scalars.extra == value
        assert scalars.to_json()["extra"] == value
    doc = scalars_json()
    del doc["extra"]
    assert "missing field `extra`" in str(refused(Scalars.from_json, doc))
    scalars = Scalars.from_json(scalars_json())
    scalars.extra = {1, 2}
    with pytest.raises(EncodeError, match="not a JSON value"):
        scalars.to_json()


def containers_json() -> dict[str, Any]:
    return {
        "numbers": [1, 2], "by_name": {"b": 2, "a": 1}, "matrix": [[1.5], []],
        "groups": {"g": [{"x": 1.0, "y": 2.0}]}, "blobs": ["AQ=="],
    }  # fmt: skip


def test_option_reads_absent_and_null_the_same_and_writes_absent(
    gen: dict[str, ModuleType],
) -> None:
    everything = gen["everything"]
    Containers = everything.Containers
    absent = Containers.from_json(containers_json())
    doc = containers_json()
    doc.update(maybe=None, maybe_list=None, maybe_map=None)
    null = Containers.from_json(doc)
    assert absent == null
    assert absent.maybe is None
    written = absent.to_json()
    assert "maybe" not in written and "maybe_list" not in written and "maybe_map" not in written

    doc = containers_json()
    doc["maybe_list"] = [1, None]
    read_back = Containers.from_json(doc)
    assert read_back.maybe_list == [1, None]
    assert read_back.to_json()["maybe_list"] == [1, None]
    # Where there is no key to leave out (an optional job result), None is null.
    assert everything.DRAWING_LOOKUP.encode_result(None) is None
    assert everything.DRAWING_LOOKUP.decode_result(None) is None
    # Optional parameters are left out too.
    assert everything._DrawingCentroidParams(points=[]).to_json() == {"points": []}


def test_a_required_field_refuses_null_and_absence(gen: dict[str, ModuleType]) -> None:
    Containers = gen["everything"].Containers
    doc = containers_json()
    del doc["numbers"]
    assert "missing field `numbers`" in str(refused(Containers.from_json, doc))
    doc = containers_json()
    doc["numbers"] = None
    err = refused(Containers.from_json, doc)
    assert err.path == "numbers"
    assert "invalid type: null" in str(err)


def test_vec_is_an_array_and_map_an_object_with_sorted_keys(gen: dict[str, ModuleType]) -> None:
    Containers = gen["everything"].Containers
    containers = Containers.from_json(containers_json())
    assert containers.numbers == [1, 2]
    assert containers.by_name == {"a": 1, "b": 2}
    text = json.dumps(containers.to_json(), separators=(",", ":"))
    assert '"by_name":{"a":1,"b":2}' in text
    doc = containers_json()
    doc["by_name"] = [["a", 1]]
    assert "expected a map" in str(refused(Containers.from_json, doc))
    doc = containers_json()
    doc["numbers"] = {"0": 1}
    assert "expected an array" in str(refused(Containers.from_json, doc))
    # Errors inside containers name the element.
    doc = containers_json()
    doc["groups"] = {"g": [{"x": 1.0, "y": 2.0}, {"x": "1"}]}
    err = refused(Containers.from_json, doc)
    assert err.path == 'groups["g"][1].x'


def test_a_map_with_a_repeated_key_keeps_the_last_value(gen: dict[str, ModuleType]) -> None:
    Containers = gen["everything"].Containers
    text = '{"numbers":[],"by_name":{"a":1,"a":2},"matrix":[],"groups":{},"blobs":[]}'
    assert Containers.from_json(json.loads(text)).by_name["a"] == 2
    # A struct field given twice: json.loads keeps the last one before the
    # reader sees it (the Rust reader refuses the text: `duplicate field`).
    Point = gen["common"].Point
    assert Point.from_json(json.loads('{"x":1.0,"y":2.0,"x":3.0}')) == Point(3.0, 2.0)


def test_structs_are_objects_keyed_by_wire_name_and_ignore_unknown_fields(
    gen: dict[str, ModuleType],
) -> None:
    everything = gen["everything"]
    header = everything.HttpHeader.from_json({"labelText": "A", "Value": "b", "later": 1})
    assert (header.label_text, header.value) == ("A", "b")
    assert header.to_json() == {"labelText": "A", "Value": "b"}
    err = refused(everything.HttpHeader.from_json, {"label_text": "A", "Value": "b"})
    assert "missing field `labelText`" in str(err)
    keywords = everything.Keywords.from_json({"type": "t", "match": True, "self": 1})
    assert (keywords.type_, keywords.match_, keywords.self_, keywords.async_) == ("t", True, 1, None)
    assert keywords.to_json() == {"type": "t", "match": True, "self": 1}
    keywords.async_ = 7
    assert keywords.to_json()["async"] == 7


def test_a_struct_given_as_an_array_is_refused(gen: dict[str, ModuleType]) -> None:
    # serde's derive reads `[1.0, 2.0]` as a Point; the protocol says
    # "object", and other implementations may refuse arrays: this one does.
    Point = gen["common"].Point
    assert "expected struct Point (an object)" in str(refused(Point.from_json, [1.0, 2.0]))
    centroid = gen["everything"]._DrawingCentroidParams
    assert "expected the parameters of Drawing.centroid" in str(
        refused(centroid.from_json, [[{"x": 1.0, "y": 2.0}]])
    )


def test_params_are_one_object_keyed_by_parameter_wire_name(gen: dict[str, ModuleType]) -> None:
    everything = gen["everything"]
    request = everything._DrawingCentroidParams.from_json({"points": [], "zoom": 2})
    assert request.page is None
    err = refused(everything._DrawingCentroidParams.from_json, {"page": None})
    assert "missing field `points`" in str(err)
    rotate = everything._DrawingRotateParams.from_json({"shape": "Empty", "deg": 90})
    assert rotate.degrees == 90.0
    err = refused(everything._DrawingRotateParams.from_json, {"shape": "Empty", "degrees": 90})
    assert "missing field `deg`" in str(err)
    assert everything._DrawingCountParams().to_json() == {}
    assert everything._DrawingRotateParams(everything.ShapeEmpty(), 1.5).to_json() == {
        "shape": "Empty",
        "deg": 1.5,
    }


def test_enums_are_externally_tagged(gen: dict[str, ModuleType]) -> None:
    e = gen["everything"]
    Point = gen["common"].Point
    cases = [
        (e.ShapeEmpty(), "Empty"),
        (
            e.ShapeCircle(Point(0.0, 1.0), 2.0),
            {"Circle": {"center": {"x": 0.0, "y": 1.0}, "radius": 2.0}},
        ),
        (e.ShapePolygon([Point(1.0, 1.0)]), {"Polygon": [{"x": 1.0, "y": 1.0}]}),
        (
            e.ShapeRectangle(Point(0.0, 0.0), 1.0, 2.0),
            {"rect": {"corner": {"x": 0.0, "y": 0.0}, "width": 1.0, "height": 2.0}},
        ),
    ]
    for shape, wire in cases:
        assert shape.to_json() == wire
        assert e.Shape.from_json(wire) == shape
        assert isinstance(e.Shape.from_json(wire), e.Shape)
    assert e.Color.from_json("Green") == e.ColorGreen()
    assert e.ColorGreen().to_json() == "Green"
    assert e.Shape.from_json({"Empty": None}) == e.ShapeEmpty()
    # Variants pattern-match.
    match e.Shape.from_json({"Circle": {"center": {"x": 0, "y": 1}, "radius": 2}}):
        case e.ShapeCircle(center=center, radius=radius):
            assert (center, radius) == (Point(0.0, 1.0), 2.0)  # type: ignore[has-type]
        case other:
            pytest.fail(f"matched {other}")


def test_unknown_variants_and_malformed_tags_are_refused(gen: dict[str, ModuleType]) -> None:
    e = gen["everything"]
    assert "unknown variant `Purple`" in str(refused(e.Color.from_json, "Purple"))
    assert "unknown variant `Rectangle`" in str(refused(e.Shape.from_json, {"Rectangle": {}}))
    assert "unknown variant `red`" in str(refused(e.Color.from_json, "red"))
    err = refused(e.Shape.from_json, {"Empty": None, "Polygon": []})
    assert "2 keys" in str(err)
    err = refused(e.Shape.from_json, {"Circle": {"radius": 1.0}})
    assert "missing field `center`" in str(err)
    assert err.path == "Circle"
    assert "invalid type: unit variant" in str(refused(e.Shape.from_json, "Circle"))
    assert "expected unit variant" in str(refused(e.Shape.from_json, {"Empty": 1}))
    assert "expected Shape" in str(refused(e.Shape.from_json, 5))
    # Writers refuse the wrong class where a variant is expected.
    with pytest.raises(EncodeError, match="expected Shape, got Point"):
        e._DrawingRotateParams(gen["common"].Point(1.0, 2.0), 1.0).to_json()


def test_recursive_types_round_trip(gen: dict[str, ModuleType]) -> None:
    e = gen["everything"]
    tree = {
        "label": "root",
        "children": [{"label": "a", "children": [], "by_key": {}}],
        "by_key": {"k": {"label": "b", "children": [], "by_key": {}}},
    }
    assert e.Tree.from_json(tree).to_json() == tree
    node = {"value": 1, "next": {"value": 2, "next": {"value": 3}}}
    read = e.Node.from_json(node)
    assert read.next.next.next is None
    assert read.to_json() == node
    expr = {
        "Add": {
            "left": {"Number": 1.0},
            "right": {"Call": {"name": "f", "args": [{"Negate": {"Number": 2.0}}]}},
        }
    }
    assert e.Expr.from_json(expr).to_json() == expr
    let = {"Let": {"name": "x", "value": {"Number": 1.0}}}
    assert e.Expr.from_json(let) == e.ExprLet(e.Binding("x", e.ExprNumber(1.0)))
    person = {"name": "Ann", "pet": {"name": "Rex", "owner": {"name": "Ann"}}}
    assert e.Person.from_json(person).to_json() == person
    err = refused(e.Expr.from_json, {"Add": {"left": {"Number": 1}, "right": {"Negate": "x"}}})
    assert err.path == "Add.right.Negate"


def test_decode_errors_name_the_path(gen: dict[str, ModuleType]) -> None:
    calculator = gen["calculator"]
    params = {"values": [{"value": 1}, {"value": 2}, {"value": 3, "label": 5}]}
    err = refused(calculator._CalculatorSumParams.from_json, params)
    assert err.path == "values[2].label"
    assert str(err) == "`values[2].label`: invalid type: integer `5`, expected a string"
    assert str(err.in_job("Calculator.sum")) == (
        "Calculator.sum: `values[2].label`: invalid type: integer `5`, expected a string"
    )
    with pytest.raises(EncodeError) as info:
        calculator._CalculatorSumParams([calculator.Tagged(1.0), calculator.Tagged("x")]).to_json()
    assert info.value.path == "values[1].value"


def test_typed_errors_and_job_specs(gen: dict[str, ModuleType]) -> None:
    calculator = gen["calculator"]
    spec = calculator.CALCULATOR_DIVIDE
    assert (spec.job, spec.timeout_ms, spec.one_way) == ("Calculator.divide", 2000, False)
    error = spec.decode_error({"Overflow": {"limit": 1}})
    assert isinstance(error, calculator.MathErrorException)
    assert error.error == calculator.MathErrorOverflow(1)
    assert error.error_json() == {"Overflow": {"limit": 1}}
    assert calculator.MathErrorException(calculator.MathErrorDivideByZero()).error_json() == (
        "DivideByZero"
    )
    assert calculator.CALCULATOR_LOG.one_way
    e = gen["everything"]
    assert (e.DRAWING_DRAW.max_attempts, e.DRAWING_DRAW.backoff) == (3, "exponential(100ms, 30s)")
    assert e.DRAWING_ROTATE.name == "shape.rotate"
    assert e.DRAWING_TYPE.name == "type"
    assert e.DRAWING_HEADER_VALUE.name == "headerValue"
    assert e.DRAWING_PAINT.deprecated == "use `draw`"
    assert e.ADMIN_RESET.deprecated == ""
    assert isinstance(e.DRAWING_FIND.decode_error("Forbidden"), gen["common"].CommonErrorException)
    assert e.ADMIN_STATS.decode_result({"b": 1}) == {"b": 1}


class _FakeClient:
    """Records what a generated client hands the runtime (no Redis here:
    the calls themselves are the client helper's tests)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, dict[str, Any], Any]] = []

    def call_job(self, spec: Any, params: dict[str, Any], options: Any = None) -> Any:
        self.calls.append(("call_job", spec, params, options))
        return None

    def send_one_way(self, spec: Any, params: dict[str, Any], options: Any = None) -> str:
        self.calls.append(("send_one_way", spec, params, options))
        return "id"


def test_client_methods_encode_params_and_carry_options(gen: dict[str, ModuleType]) -> None:
    e = gen["everything"]
    fake = _FakeClient()
    client = e.DrawingClient(fake).with_options(timeout=2.0, metadata={"tenant": "a"})
    client.rotate(e.ShapeEmpty(), 90)
    client.with_options(idempotency_key="k").log("hello")
    (kind, spec, params, options), (kind2, spec2, params2, options2) = fake.calls
    assert (kind, spec.job, params) == ("call_job", "Drawing.shape.rotate", {"shape": "Empty", "deg": 90.0})
    assert (options.timeout, dict(options.metadata)) == (2.0, {"tenant": "a"})
    assert (kind2, params2) == ("send_one_way", {"line": "hello"})
    assert (options2.timeout, options2.idempotency_key) == (2.0, "k")
    with pytest.raises(EncodeError, match="out of range for u8"):
        client.log("x", 300)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client.paint(e.OldShape(3))
    assert [str(w.message) for w in caught] == ["job `Drawing.paint` is deprecated: use `draw`"]
    assert caught[0].category is DeprecationWarning


def test_service_binds_handlers_and_decodes_params(gen: dict[str, ModuleType]) -> None:
    import asyncio

    from rpc_runtime import Context

    calculator = gen["calculator"]

    class Sync(calculator.Calculator):  # type: ignore[misc,name-defined]
        def add(self, ctx: Context, a: int, b: int) -> int:
            return a + b

        def divide(self, ctx: Context, a: float, b: float) -> float:
            if b == 0:
                raise calculator.MathErrorException(calculator.MathErrorDivideByZero())
            return a / b

        def log(self, ctx: Context, line: str) -> None:
            return None

        def sum(self, ctx: Context, values: list[Any]) -> Any:
            return calculator.Tagged(sum(v.value for v in values), label="sum")

    class Async(calculator.AsyncCalculator):  # type: ignore[misc,name-defined]
        async def add(self, ctx: Context, a: int, b: int) -> int:
            return a + b

        async def divide(self, ctx: Context, a: float, b: float) -> float:
            return a / b

        async def log(self, ctx: Context, line: str) -> None:
            return None

        async def sum(self, ctx: Context, values: list[Any]) -> Any:
            return calculator.Tagged(0.0)

    ctx = Context(call_id="1", job="Calculator.add")
    service = calculator.calculator_service(Sync())
    assert service.name == "Calculator"
    jobs = {b.spec.name: b for b in service.jobs}
    assert sorted(jobs) == ["add", "divide", "log", "sum"]
    assert not jobs["add"].is_async
    assert jobs["add"].run(ctx, {"a": 2, "b": 3}) == 5
    result = jobs["sum"].run(ctx, {"values": [{"value": 1}, {"value": 2.5}]})
    assert jobs["sum"].spec.encode_result(result) == {"value": 3.5, "label": "sum"}
    with pytest.raises(calculator.MathErrorException) as info:
        jobs["divide"].run(ctx, {"a": 1, "b": 0})
    assert info.value.error_json() == "DivideByZero"
    with pytest.raises(DecodeError) as bad:
        jobs["add"].run(ctx, {"a": 2})
    assert "missing field `b`" in str(bad.value)

    service = calculator.calculator_service(Async())
    jobs = {b.spec.name: b for b in service.jobs}
    assert jobs["add"].is_async
    assert asyncio.run(jobs["add"].run(ctx, {"a": 2, "b": 3})) == 5
    with pytest.raises(TypeError):
        calculator.calculator_service(object())
