"""The code suite's verdict, computed in the trusted reward process from what a sandboxed run returned.

Expected outputs never leave this process. stdio tests compare captured stdout; call tests decode the returned
value (plain data only, see ``sandbox/runner.py``) and compare it; an assert ``assert <condition>`` is split: every
maximal sub-expression that names something of the program (``f(3)``, ``Solution().g(x)[0]``) is evaluated in the
sandbox and comes back as plain data; the rest of the condition (literals, arithmetic, comparisons, a few builtins
such as ``sorted``/``set``/``abs`` and ``math.isclose``) is evaluated here on those values. So ``__eq__`` and
``__bool__`` of the program's objects never decide a verdict. In a comparison at least one side must come from the
test alone (``f(1) == g(1)`` is unsupported: the program would choose both sides). An assert outside that form
(several statements, comparisons inside comprehensions over program values, ...) is ``unsupported``: it fails, and
is counted and warned once.
"""

from __future__ import annotations

import ast
import json
import math
import operator
import re
import time
from dataclasses import dataclass

MAX_RECORD = 1 << 20
MAX_DEPTH = 64
_FUNCS = {
    "abs": abs, "all": all, "any": any, "bool": bool, "dict": dict, "float": float, "frozenset": frozenset,
    "int": int, "len": len, "list": list, "max": max, "min": min, "reversed": lambda x: list(reversed(x)),
    "round": round, "set": set, "sorted": sorted, "str": str, "sum": sum, "tuple": tuple,
}  # fmt: skip
_MATH = {"isclose", "sqrt", "fabs", "floor", "ceil", "isnan", "isinf", "isfinite", "inf", "nan", "pi", "e", "log"}
PARENT_NAMES = frozenset(_FUNCS) | {"math"}
_BINOPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow, ast.LShift: operator.lshift,
    ast.RShift: operator.rshift, ast.BitAnd: operator.and_, ast.BitOr: operator.or_, ast.BitXor: operator.xor,
}  # fmt: skip
_CMPOPS = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
    ast.GtE: operator.ge, ast.Is: operator.is_, ast.IsNot: operator.is_not,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}  # fmt: skip
_UNARY = {ast.Not: operator.not_, ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert}
_STRUCT = (ast.Compare, ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.IfExp, ast.List, ast.Tuple, ast.Set, ast.Dict)
_SLOT = "__gdpo_slot_"


class Unsupported(ValueError):
    """A test this verdict cannot decide safely."""


# --- values coming back from the sandbox -------------------------------------------------------------------------
def decode_record(raw: str | None) -> dict | None:
    """Exactly one JSON object with exactly one known key, else None (two records, junk, nothing)."""
    if not raw or len(raw) > MAX_RECORD:
        return None
    try:
        rec = json.loads(raw, parse_constant=_reject)
    except (ValueError, RecursionError):
        return None
    keys = {"value", "error", "compile_error", "unencodable"}
    if not isinstance(rec, dict) or len(rec) != 1 or not set(rec) <= keys:
        return None
    return rec


def _reject(name: str):
    raise ValueError(f"{name} is not allowed in a record")


def decode_value(x, depth: int = 0):
    """Inverse of ``runner.encode``. Raises ValueError on anything else."""
    if depth > MAX_DEPTH:
        raise ValueError("value nested too deep")
    if x is None or type(x) in (bool, int, float, str):
        return x
    if type(x) is list:
        return [decode_value(v, depth + 1) for v in x]
    if type(x) is dict and len(x) == 1:
        ((tag, body),) = x.items()
        if tag == "f" and body in ("nan", "inf", "-inf"):
            return float(body)
        if type(body) is list:
            items = [decode_value(v, depth + 1) for v in body]
            try:
                if tag == "t":
                    return tuple(items)
                if tag == "s":
                    return set(items)
                if tag == "d" and all(type(p) is list and len(p) == 2 for p in items):
                    return {k: v for k, v in items}
            except TypeError:  # unhashable key or member
                raise ValueError("unhashable set member or dict key") from None
    raise ValueError("not an encoded plain value")


# --- comparisons ---------------------------------------------------------------------------------------------------
# Exact, except where the expected value is a float: then |got - want| <= FLOAT_TOL * max(1, |want|) (the usual
# "absolute or relative error 1e-6" of judges). Integers, strings, booleans and None compare exactly.
FLOAT_TOL = 1e-6
_FLOAT_TOKEN = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+|\d+(?=[eE]))(?:[eE][+-]?\d+)?")


def float_close(got, want: float) -> bool:
    """``got`` (an int or float) within the float tolerance of the expected float ``want``."""
    try:
        g = float(got)
    except (OverflowError, ValueError, TypeError):
        return False
    return math.isfinite(g) and math.isfinite(want) and abs(g - want) <= FLOAT_TOL * max(1.0, abs(want))


def value_equal(got, want) -> bool:
    """A returned value against an expected one, element by element: floats expected -> tolerance, else exact."""
    if type(want) is bool or type(got) is bool or want is None:
        return type(got) is type(want) and got == want
    if type(want) is float:
        return type(got) in (int, float) and float_close(got, want)
    if type(want) is int:
        return (type(got) is int and got == want) or (type(got) is float and got == want)  # exact, 3.0 == 3
    if isinstance(want, list) and isinstance(got, list):
        return len(got) == len(want) and all(value_equal(x, y) for x, y in zip(got, want, strict=True))
    if isinstance(want, dict) and isinstance(got, dict):
        return got.keys() == want.keys() and all(value_equal(got[k], want[k]) for k in want)
    return type(got) is type(want) and got == want


def as_json_like(v):
    """A returned value in the shape a JSON ground truth has: tuples and sets as lists, dict keys as strings."""
    if isinstance(v, (list, tuple)):
        return [as_json_like(x) for x in v]
    if isinstance(v, (set, frozenset)):
        items = [as_json_like(x) for x in v]
        try:
            return sorted(items)
        except TypeError:
            return items
    if isinstance(v, dict):
        return {json.dumps(k) if not isinstance(k, str) else k: as_json_like(x) for k, x in v.items()}
    return v


def call_equal(got, want) -> bool:
    """Call-based tests (APPS/TACO convention): the value, or the single element of a one-element expected list."""
    got = as_json_like(got)
    return value_equal(got, want) or (isinstance(want, list) and len(want) == 1 and value_equal(got, want[0]))


def _norm_lines(text: str) -> list[str]:
    return [ln.rstrip() for ln in text.strip().splitlines()]


def token_equal(got: str, want: str) -> bool:
    """One whitespace-separated stdout token: exact, unless the expected token is a float literal."""
    if got == want:
        return True
    if not _FLOAT_TOKEN.fullmatch(want) or len(got) > 400:
        return False
    try:
        return float_close(float(got), float(want))
    except ValueError:
        return False


def stdio_equal(got: str, want) -> bool:
    """stdout against the expected text: equal after stripping the ends and each line's trailing whitespace, or
    equal token by token (any whitespace between tokens), a token compared with tolerance only where the expected
    token is a float literal (``0.5``, ``1e-3``; ``7`` or ``1000000`` must match exactly)."""
    want = "\n".join(map(str, want)) if isinstance(want, list) else str(want)
    if _norm_lines(got) == _norm_lines(want):
        return True
    gt, wt = got.split(), want.split()
    return len(gt) == len(wt) and all(token_equal(x, y) for x, y in zip(gt, wt, strict=True))


# --- asserts ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AssertPlan:
    exprs: tuple[str, ...]  # evaluated in the sandbox, in order
    condition: ast.expr  # evaluated here, with the slots bound to their values

    def holds(self, values: list) -> bool:
        if len(values) != len(self.exprs):
            return False
        env = {f"{_SLOT}{i}": v for i, v in enumerate(values)}
        return bool(_eval(self.condition, env, time.monotonic() + EVAL_S))


def _free_names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _parent_call(node: ast.AST) -> bool:
    f = getattr(node, "func", None)
    return isinstance(node, ast.Call) and (
        (isinstance(f, ast.Name) and f.id in _FUNCS)
        or (isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "math")
    )


def _split(node: ast.expr, slots: list[str]) -> ast.expr:
    if not (_free_names(node) - PARENT_NAMES):
        return node  # the test's own data: evaluated here
    if isinstance(node, ast.Compare) and all(
        _free_names(x) - PARENT_NAMES for x in (node.left, *node.comparators)
    ):  # the expected side must come from the test alone, or the program would choose both sides
        raise Unsupported("a comparison whose every side comes from the program")
    if isinstance(node, _STRUCT) or _parent_call(node):
        for field, value in ast.iter_fields(node):
            if field == "func":
                continue
            if isinstance(value, list):
                setattr(node, field, [_split(v, slots) if isinstance(v, ast.expr) else v for v in value])
            elif isinstance(value, ast.expr):
                setattr(node, field, _split(value, slots))
        for kw in getattr(node, "keywords", []):
            if kw.arg is None:
                raise Unsupported("**kwargs in a test")
            kw.value = _split(kw.value, slots)
        return node
    if any(isinstance(n, (ast.Starred, ast.NamedExpr)) for n in ast.walk(node)):
        raise Unsupported("starred or walrus expression in a test")
    if any(isinstance(n, ast.Compare) for n in ast.walk(node)):
        # a comparison evaluated in the sandbox would run the program's __eq__ against the test's data
        raise Unsupported("a comparison inside an expression on the program's values")
    if isinstance(node, ast.GeneratorExp):
        node = ast.ListComp(elt=node.elt, generators=node.generators)
    slots.append(ast.unparse(node))
    return ast.Name(id=f"{_SLOT}{len(slots) - 1}", ctx=ast.Load())


def plan_assert(source: str) -> AssertPlan:
    """Split one ``assert <condition>`` test. Raises Unsupported."""
    try:
        tree = ast.parse(source.strip())
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise Unsupported("test does not parse") from None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Assert):
        raise Unsupported("a test must be a single assert statement")
    slots: list[str] = []
    condition = _split(tree.body[0].test, slots)
    _check_local(condition)
    return AssertPlan(tuple(slots), condition)


def _check_local(node: ast.AST) -> None:
    allowed = (
        *_STRUCT, ast.Constant, ast.Name, ast.Load, ast.Call, ast.keyword, ast.Attribute, ast.Subscript, ast.Slice,
        ast.cmpop, ast.operator, ast.unaryop, ast.boolop,
    )  # fmt: skip
    for n in ast.walk(node):
        if not isinstance(n, allowed):
            raise Unsupported(f"{type(n).__name__} in a test")
        if isinstance(n, ast.Call) and not _parent_call(n):
            raise Unsupported("a call to a function the test does not define")
        if isinstance(n, ast.Attribute) and not (
            isinstance(n.value, ast.Name) and n.value.id == "math" and n.attr in _MATH
        ):
            raise Unsupported(f"attribute .{n.attr} in a test")
        if isinstance(n, ast.Name) and not (n.id in PARENT_NAMES or n.id.startswith(_SLOT)):
            raise Unsupported(f"name {n.id!r} in a test")


class TooLarge(ValueError):
    """Evaluating the condition on the program's values would exceed the size or time bound of trusted evaluation."""


# Bounds on what the parent computes for an assert: every value, every format directive, the whole evaluation.
MAX_ITEMS = 1_000_000  # characters or elements of any computed str/bytes/list/tuple/set/dict
MAX_INT_BITS = 1 << 20
MAX_FORMAT_WIDTH = 10_000  # width / precision of a %-directive
MAX_ROUND_DIGITS = 10_000
EVAL_S = 2.0  # one condition, checked between nodes (each node is bounded by the size limits)
_FORMAT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(\*|\d*)(?:\.(\*|\d*))?")


def _bounded(x):
    if type(x) is int and x.bit_length() > MAX_INT_BITS:
        raise TooLarge("integer too large")
    if isinstance(x, (str, bytes, list, tuple, set, frozenset, dict)) and len(x) > MAX_ITEMS:
        raise TooLarge("value too large")
    return x


def _check_format(fmt: str | bytes) -> None:
    text = fmt.decode("latin-1") if isinstance(fmt, bytes) else fmt
    for m in _FORMAT_SPEC.finditer(text):
        for part in m.groups():
            if part == "*" or (part and (len(part) > 5 or int(part) > MAX_FORMAT_WIDTH)):
                raise TooLarge("%-format width or precision too large")


def _binop(op: ast.operator, a, b):
    ints = type(a) is int and type(b) is int
    if isinstance(op, ast.Pow) and ints and (b > 10_000 or (abs(a) > 1 and a.bit_length() * max(b, 0) > MAX_INT_BITS)):
        raise TooLarge("power too large")
    if isinstance(op, ast.LShift) and ints and (b > MAX_INT_BITS or a.bit_length() + max(b, 0) > MAX_INT_BITS):
        raise TooLarge("shift too large")
    if isinstance(op, ast.Mult):
        for seq, n in ((a, b), (b, a)):
            if isinstance(seq, (str, bytes, list, tuple)) and type(n) is int and n * len(seq) > MAX_ITEMS:
                raise TooLarge("sequence repetition too large")
    if isinstance(op, ast.Mod) and isinstance(a, (str, bytes)):
        _check_format(a)
    return _bounded(_BINOPS[type(op)](a, b))


def _number_sum(values, start=0):
    if type(start) not in (int, float):  # sum(lists, []) is quadratic
        raise TypeError("sum() of non-numbers in a test")
    return sum(values, start)


def _round(x, ndigits=None):
    if ndigits is not None and type(ndigits) is int and abs(ndigits) > MAX_ROUND_DIGITS:
        raise TooLarge("round() digits too large")
    return round(x, ndigits)


_FUNCS.update(sum=_number_sum, round=_round)


def _eval(node: ast.AST, env: dict, deadline: float):
    if time.monotonic() > deadline:
        raise TooLarge("test evaluation too slow")
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in env:
            return env[node.id]
        raise Unsupported(f"name {node.id!r}")
    if isinstance(node, ast.Attribute):
        return getattr(math, node.attr)
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        items = [_eval(e, env, deadline) for e in node.elts]
        return _bounded({ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)](items))
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise Unsupported("** in a dict display")
        pairs = zip(node.keys, node.values, strict=True)
        return _bounded({_eval(k, env, deadline): _eval(v, env, deadline) for k, v in pairs})
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_eval(node.operand, env, deadline))
    if isinstance(node, ast.BinOp):
        return _binop(node.op, _eval(node.left, env, deadline), _eval(node.right, env, deadline))
    if isinstance(node, ast.BoolOp):
        is_and = isinstance(node.op, ast.And)
        value = None
        for e in node.values:
            value = _eval(e, env, deadline)
            if bool(value) != is_and:
                return value
        return value
    if isinstance(node, ast.Compare):
        left = _eval(node.left, env, deadline)
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = _eval(comp, env, deadline)
            if not _CMPOPS[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.IfExp):
        return _eval(node.body if _eval(node.test, env, deadline) else node.orelse, env, deadline)
    if isinstance(node, ast.Subscript):
        return _eval(node.value, env, deadline)[_eval(node.slice, env, deadline)]
    if isinstance(node, ast.Slice):
        parts = [None if p is None else _eval(p, env, deadline) for p in (node.lower, node.upper, node.step)]
        return slice(*parts)
    if isinstance(node, ast.Call):
        f = node.func
        fn = _FUNCS[f.id] if isinstance(f, ast.Name) else getattr(math, f.attr)
        args = [_eval(a, env, deadline) for a in node.args]
        return _bounded(fn(*args, **{kw.arg: _eval(kw.value, env, deadline) for kw in node.keywords}))
    raise Unsupported(f"{type(node).__name__} in a test")


def condition_holds(plan: AssertPlan, values: list) -> bool:
    """Evaluate the local part of an assert; any error in it (a TypeError on a wrong-typed value...) is a fail.
    Raises TooLarge when the program's values push the evaluation past its bounds, Unsupported for the test."""
    try:
        return plan.holds(values)
    except (Unsupported, TooLarge):
        raise
    except MemoryError:
        raise TooLarge("out of memory evaluating the test") from None
    except (ArithmeticError, TypeError, ValueError, KeyError, IndexError, AttributeError, RecursionError):
        return False
