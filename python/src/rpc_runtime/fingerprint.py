"""An idempotent call's fingerprint: which job and parameters a key stands
for, byte for byte what ``rpc-protocol/src/fingerprint.rs`` computes.

Two senders in any language must reach the same fingerprint for the same
call however they spell its JSON, so the parameters are hashed in a
canonical form (docs/PROTOCOL.md, "The fingerprint"): RFC 8785 for
structure and strings, except that an integer literal that fits a 64-bit
integer is written exactly, never rounded through a double.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

_U64_MAX = 2**64 - 1
_I64_MIN = -(2**63)
_TWO_53 = 2.0**53


class _NotJson(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not JSON")


def fingerprint(job: str, params: str | bytes) -> str | None:
    """SHA-256, lowercase hex, of ``job``, a newline and the canonical form
    of ``params`` (the JSON text as sent); None when it is not JSON."""
    try:
        value = json.loads(params, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError):
        return None
    return fingerprint_value(job, value)


def fingerprint_value(job: str, value: Any) -> str | None:
    """The fingerprint of an already parsed value (ints as Python ints, as
    ``json.loads`` gives them); None when it holds what JSON cannot."""
    try:
        text = canonical(value)
        data = job.encode("utf-8") + b"\n" + text.encode("utf-8")
    except (ValueError, UnicodeEncodeError, TypeError, OverflowError):
        return None
    return hashlib.sha256(data).hexdigest()


def canonical(value: Any) -> str:
    """``value`` in the canonical form."""
    out: list[str] = []
    _write(value, out)
    return "".join(out)


def _write(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(_integer(value))
    elif isinstance(value, float):
        out.append(_double(value))
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    elif isinstance(value, dict):
        out.append("{")
        members = sorted(value.items(), key=lambda kv: _utf16(kv[0]))
        for i, (key, item) in enumerate(members):
            if i:
                out.append(",")
            if not isinstance(key, str):
                raise TypeError("object keys are strings")
            out.append(_string(key))
            out.append(":")
            _write(item, out)
        out.append("}")
    else:
        raise TypeError(f"not a JSON value: {type(value).__name__}")


def _utf16(key: Any) -> bytes:
    # Big-endian code units compare as the code units do.
    return str(key).encode("utf-16-be", "surrogatepass")


def _integer(i: int) -> str:
    if _I64_MIN <= i <= _U64_MAX:
        return str(i)
    # Past 64 bits serde_json reads the literal as the nearest double.
    return _double(float(i))


def _double(f: float) -> str:
    if math.isnan(f) or math.isinf(f):
        raise ValueError("JSON has no NaN or infinity")
    if f == int(f) and abs(f) < _TWO_53:
        return str(int(f))
    return ecmascript_number(f)


def ecmascript_number(f: float) -> str:
    """``Number.prototype.toString`` of a finite double (ECMA-262 7.1.12.1):
    the shortest digits that read back as ``f``, placed as ECMAScript does."""
    if f == 0:
        return "0"
    sign = "-" if f < 0 else ""
    # repr gives the shortest round-tripping digits (the same as ryu).
    text = repr(abs(f))
    mantissa, _, exp_text = text.partition("e")
    exponent = int(exp_text) if exp_text else 0
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    # The position of the decimal point relative to the digits' start.
    n = len(whole.lstrip("0")) + exponent if whole.strip("0") else exponent - (
        len(fraction) - len(fraction.lstrip("0"))
    )
    digits = digits.rstrip("0") or "0"
    k = len(digits)
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        sign_e = "+" if e >= 0 else "-"
        body = (digits[0] + ("." + digits[1:] if k > 1 else "")) + "e" + sign_e + str(abs(e))
    return sign + body


def _string(s: str) -> str:
    # json.dumps escapes exactly RFC 8785's set: '"', '\\', \b \t \n \f \r
    # and lowercase \u00xx for the other controls; the rest stays as UTF-8.
    s.encode("utf-8")  # a lone surrogate is not JSON text: refused
    return json.dumps(s, ensure_ascii=False)
