"""Where a script's knobs come from and what they drive, read from its decoded source by data flow.

A knob is a value the run can set: an environment variable, read directly (`os.environ.get`,
`os.getenv`, `os.environ[...]`), through an alias (`E = os.environ.get`) or through a helper of the
script's own (`def _env_int(name, default): return int(os.environ.get(name, default))`). Its value is
followed through the names it is bound to (module constants, `Hyperparameters` fields, `self.x`,
dataclass fields, `getattr(args, "x", d)`, locals, and the parameters of the script's own functions
it is passed to) to what it drives:

  update_loop   grows the count of a loop whose body (or a function of the script it calls) runs a
                backward pass or an optimizer step: TTT epochs, SLOT steps, pre-quant epochs
  update_chunk  shrinks that count: the size of the chunks (or batches) such a loop walks over
  loop, chunk   the same for a loop without updates (passes, windows, orders; window strides)
  table         the size of an allocation (`np.zeros(n)`, `torch.empty(n)`)
  table_bits    an exponent of one (`1 << bits`, `2 ** bits`)

Directions come from the arithmetic: a knob under a division or a subtraction, or in the step of a
`range`, shrinks what it reaches; conditions are gates, not values, and add nothing.
Loops bounded by a literal (`for epoch in range(20)` around a backward) cannot be set from outside;
they are reported as such, so the harness can bound the run another way.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field

_READERS = ("environ.get", "getenv", "environ.setdefault")
_ALLOCATORS = frozenset({"zeros", "ones", "empty", "full", "zeros_like", "randn", "rand", "randint", "arange"})
_UPDATE_CALLS = frozenset({"backward", "step"})
_MAX_CALL_DEPTH = 3


@dataclass
class Knob:
    name: str  # the environment variable
    default: object = None  # its literal default (None when not a literal)
    line: int = 0  # where it is first read
    names: set[str] = field(default_factory=set)  # names its value is bound to
    roles: dict[str, int] = field(default_factory=dict)  # role -> first line that shows it

    @property
    def numeric_default(self) -> float | None:
        return as_number(self.default)


@dataclass
class LiteralLoop:
    """An update loop bounded by a literal: not settable from outside the script."""

    count: int
    line: int


@dataclass
class KnobMap:
    knobs: dict[str, Knob] = field(default_factory=dict)
    literal_update_loops: list[LiteralLoop] = field(default_factory=list)
    parsed: bool = True

    def reads(self) -> dict[str, object]:
        return {name: knob.default for name, knob in self.knobs.items()}

    def by_binding(self, name: str) -> list[Knob]:
        return [k for k in self.knobs.values() if name in k.names]


def _growing(flow: Flow, direct: bool = True) -> set[str]:
    return {k for k, (s, d) in flow.items() if s >= 0 and (d or not direct)}


def _shrinking(flow: Flow, direct: bool = True) -> set[str]:
    return {k for k, (s, d) in flow.items() if s <= 0 and (d or not direct)}


def _merge(into: Flow, new: Flow) -> None:
    for knob, (sign, direct) in new.items():
        if knob in into:
            old_sign, old_direct = into[knob]
            into[knob] = (sign if old_sign == sign else 0, direct or old_direct)
        else:
            into[knob] = (sign, direct)


def as_number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.replace("_", ""))
        except ValueError:
            return None
    return None


def discover(source: str, *others: str) -> KnobMap:
    """Every environment knob of the decoded `source`, with the names it reaches and its roles.
    `others`: sources the script imports or execs (its helpers), read as one program with it, so a
    loop in the script around a helper's optimizer step is an update loop. Line numbers are each
    file's own; `parsed` speaks of `source`."""
    from ..static.parse import StaticParseError, parse_source

    modules = []
    for i, text in enumerate((source, *others)):
        try:
            modules.append(parse_source(text))
        except (StaticParseError, RecursionError):
            if i == 0:
                return KnobMap(parsed=False)
    program = ast.Module(body=[stmt for m in modules for stmt in m.body], type_ignores=[])
    try:
        return _Flow(program).run()
    except RecursionError:  # absurd nesting: the knobs found by the plain walk still count
        return KnobMap(knobs=_plain_reads(program))


def _plain_reads(module: ast.Module) -> dict[str, Knob]:
    knobs: dict[str, Knob] = {}
    for node in ast.walk(module):
        read = _direct_read(node, set())
        if read is not None:
            knobs.setdefault(read[0], Knob(read[0], read[1], getattr(node, "lineno", 0)))
    return knobs


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _const_str(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _literal(node: ast.AST | None) -> object:
    if isinstance(node, ast.Constant):
        return node.value
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
        and isinstance(node.operand.value, (int, float))
    ):
        return -node.operand.value
    return None


def _direct_read(node: ast.AST, aliases: set[str]) -> tuple[str, object] | None:
    """(name, literal default) of `os.environ.get("X", d)`, `os.getenv`, `os.environ["X"]`, an alias."""
    if isinstance(node, ast.Call) and node.args:
        func = _dotted(node.func)
        if func.endswith(_READERS) or func in aliases:
            name = _const_str(node.args[0])
            if name is not None:
                default = (
                    node.args[1]
                    if len(node.args) > 1
                    else next((k.value for k in node.keywords if k.arg == "default"), None)
                )
                return name, _literal(default)
    if isinstance(node, ast.Subscript) and _dotted(node.value).endswith("environ"):
        name = _const_str(node.slice)
        if name is not None:
            return name, None
    return None


Key = tuple[int | str, str]  # ("attr", name) for attributes and fields; (scope id, name) for variables
Flow = dict[str, tuple[int, bool]]  # knob -> (direction, direct)
_SCALAR_CALLS = frozenset(
    {"int", "float", "round", "abs", "max", "min", "ceil", "floor", "bool", "str", "field"}
)  # dataclasses.field(default=..., default_factory=lambda: ...)
_SCALAR_METHODS = frozenset({"item"})


def _module_constants(module: ast.Module) -> dict[str, int]:
    """Module-level names bound once, to an int literal (`EPOCHS = 15`, `EPOCHS, LR = 15, 1e-2`)."""
    seen: dict[str, list[object]] = {}
    for stmt in module.body:
        if not isinstance(stmt, ast.Assign):
            continue
        for target in stmt.targets:
            pairs = (
                zip(target.elts, stmt.value.elts, strict=False)
                if isinstance(target, ast.Tuple)
                and isinstance(stmt.value, ast.Tuple)
                and len(target.elts) == len(stmt.value.elts)
                else [(target, stmt.value)]
            )
            for name, value in pairs:
                if isinstance(name, ast.Name):
                    seen.setdefault(name.id, []).append(_literal(value))
    return {k: v[0] for k, v in seen.items() if len(v) == 1 and isinstance(v[0], int) and not isinstance(v[0], bool)}


class _Scopes:
    """Which function (or class body, or the module) each node belongs to, and the names local to each,
    so a variable called `steps` in one function is not the `steps` of another."""

    def __init__(self, module: ast.Module) -> None:
        self.owner: dict[int, ast.AST] = {}
        self.locals: dict[int, set[str]] = {id(module): set()}
        self.module = module
        self._visit(module, module)

    def _visit(self, node: ast.AST, owner: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            self.owner[id(child)] = owner
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
                self.locals[id(child)] = _local_names(child)
                self._visit(child, child)
            else:
                self._visit(child, owner)

    def key(self, node: ast.AST, name: str) -> Key:
        owner = self.owner.get(id(node), self.module)
        if isinstance(owner, ast.ClassDef):
            return ("attr", name)  # class bodies: fields (Hyperparameters, dataclasses)
        while not isinstance(owner, ast.Module) and name not in self.locals.get(id(owner), set()):
            owner = self.owner.get(id(owner), self.module)
            if isinstance(owner, ast.ClassDef):  # methods do not see class-body names
                owner = self.module
        return (id(owner), name)


def _local_names(func: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef) -> set[str]:
    if isinstance(func, ast.ClassDef):
        return set()
    args = func.args
    names = {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}
    names |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
    if isinstance(func, ast.Lambda):
        return names
    declared: set[str] = set()
    stack: list[ast.AST] = list(func.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            declared.update(node.names)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            stack.extend(ast.iter_child_nodes(node))
        else:
            names.add(getattr(node, "name", ""))
    return names - declared


class _Flow:
    """Reads, helpers and bindings to a fixpoint, then the roles of every bound name."""

    def __init__(self, module: ast.Module) -> None:
        self.module = module
        self.scopes = _Scopes(module)
        self.functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
        self.classes: dict[str, ast.FunctionDef | None] = {}  # class -> its __init__
        for node in ast.walk(module):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.functions.setdefault(node.name, node)
            elif isinstance(node, ast.ClassDef):
                init = next((f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"), None)
                self.classes.setdefault(node.name, init)
        self.aliases: set[str] = set()
        self.helpers: dict[str, tuple[int, int | None]] = {}  # function -> (name param, default param)
        self.knobs: dict[str, Knob] = {}
        self._updates: dict[str, bool] = {}
        self._bound: dict[Key, Flow] = {}
        self.constants = _module_constants(module)

    def run(self) -> KnobMap:
        self._find_aliases()
        self._find_helpers()
        self._find_reads()
        self._bind()
        literal_loops = self._roles()
        return KnobMap(self.knobs, literal_loops)

    # ---------------------------------------------------------------- where values come from

    def _find_aliases(self) -> None:
        for node in ast.walk(self.module):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                if _dotted(node.value).endswith(_READERS):
                    self.aliases.add(node.targets[0].id)

    def _find_helpers(self) -> None:
        """Functions that read the variable their parameter names (to a fixpoint: helpers of helpers)."""
        changed = True
        while changed:
            changed = False
            for name, func in self.functions.items():
                if name in self.helpers:
                    continue
                params = [a.arg for a in func.args.args]
                for node in ast.walk(func):
                    found = self._helper_read(node, params)
                    if found is not None:
                        self.helpers[name] = found
                        changed = True
                        break

    def _helper_read(self, node: ast.AST, params: list[str]) -> tuple[int, int | None] | None:
        if not isinstance(node, ast.Call) or not node.args or not isinstance(node.args[0], ast.Name):
            return None
        func = _dotted(node.func)
        first = node.args[0].id
        if first not in params:
            return None
        if func.endswith(_READERS) or func in self.aliases:
            default = node.args[1] if len(node.args) > 1 else None
        elif func in self.helpers:
            name_at, default_at = self.helpers[func]
            if name_at != 0:
                return None
            default = node.args[default_at] if default_at is not None and default_at < len(node.args) else None
        else:
            return None
        default_at = params.index(default.id) if isinstance(default, ast.Name) and default.id in params else None
        return params.index(first), default_at

    def _read_of(self, node: ast.AST) -> tuple[str, object] | None:
        direct = _direct_read(node, self.aliases)
        if direct is not None or not isinstance(node, ast.Call):
            return direct
        helper = self.helpers.get(_dotted(node.func))
        if helper is None:
            return None
        name_at, default_at = helper
        name = _const_str(node.args[name_at]) if name_at < len(node.args) else None
        if name is None:
            return None
        default = node.args[default_at] if default_at is not None and default_at < len(node.args) else None
        return name, _literal(default)

    def _find_reads(self) -> None:
        for node in ast.walk(self.module):
            read = self._read_of(node)
            if read is not None:
                name, default = read
                knob = self.knobs.setdefault(name, Knob(name, default, getattr(node, "lineno", 0)))
                if knob.default is None and default is not None:
                    knob.default = default

    # ---------------------------------------------------------------- where values go

    def _knobs_in(self, expr: ast.AST, sign: int = 1, direct: bool = True) -> Flow:
        """Knobs an expression's value depends on: for each, the direction it moves the value (+1 grows
        with the knob, -1 shrinks: a divisor, 0 both or unknown) and whether the value is the knob up to
        scalar arithmetic (`int(args.ttt_epochs) + 1`: direct) or only derived from data it shaped
        (`len(windows)`). Conditions are gates, not values: tests and comparisons add nothing."""
        found: Flow = {}
        self._signed(expr, sign, direct, found)
        return found

    def _signed(self, node: ast.AST, sign: int, direct: bool, found: Flow) -> None:
        read = self._read_of(node)
        if read is not None:
            _merge(found, {read[0]: (sign, direct)})
            return
        key = self._key_of(node)
        if key is not None:
            _merge(found, {k: (s * sign, d and direct) for k, (s, d) in self._bound.get(key, {}).items()})
            if not isinstance(node, ast.Call):
                return
        if isinstance(node, ast.BinOp):
            self._binop(node, sign, direct, found)
        elif isinstance(node, ast.UnaryOp):
            self._signed(node.operand, -sign if isinstance(node.op, ast.USub) else sign, direct, found)
        elif isinstance(node, ast.IfExp):
            self._signed(node.body, sign, direct, found)
            self._signed(node.orelse, sign, direct, found)
        elif isinstance(node, ast.Lambda):
            self._signed(node.body, sign, direct, found)
        elif isinstance(node, ast.Call):
            self._call(node, sign, direct, found)
        elif isinstance(node, (ast.Attribute, ast.Compare, ast.Constant)):
            return
        else:
            for child in ast.iter_child_nodes(node):
                self._signed(child, sign, False, found)

    def _binop(self, node: ast.BinOp, sign: int, direct: bool, found: Flow) -> None:
        right_sign = (
            -sign
            if isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Sub))
            else 0
            if isinstance(node.op, ast.Mod)
            else sign
        )
        left, right = self._knobs_in(node.left, sign, direct), self._knobs_in(node.right, right_sign, direct)
        if isinstance(node.op, (ast.Div, ast.FloorDiv)):
            left = {k: v for k, v in left.items() if k not in right}  # ceil division: (n + c - 1) // c
        _merge(found, left)
        _merge(found, right)

    def _call(self, node: ast.Call, sign: int, direct: bool, found: Flow) -> None:
        name = _dotted(node.func).split(".")[-1]
        scalar = direct and name in _SCALAR_CALLS
        if name == "range" and len(node.args) == 3:
            self._signed(node.args[0], -sign, False, found)
            self._signed(node.args[1], sign, False, found)
            self._signed(node.args[2], -sign, False, found)
            return
        for arg in (*node.args, *(k.value for k in node.keywords)):
            self._signed(arg, sign, scalar, found)
        if isinstance(node.func, ast.Attribute):  # x.clamp(...), t.item(): the object's value
            self._signed(node.func.value, sign, direct and name in _SCALAR_METHODS, found)

    def _key_of(self, node: ast.AST) -> Key | None:
        if isinstance(node, ast.Name):
            return self.scopes.key(node, node.id)
        if isinstance(node, ast.Attribute):
            return ("attr", node.attr)
        if isinstance(node, ast.Call) and _dotted(node.func) == "getattr" and len(node.args) >= 2:
            attr = _const_str(node.args[1])
            return ("attr", attr) if attr else None
        return None

    def _bind(self) -> None:
        """key -> knobs whose value it may hold (with their direction), through assignments and calls
        to the script's own functions, to a fixpoint."""
        for _ in range(8):
            before = self._state()
            for node in ast.walk(self.module):
                for key, value in self._flows(node):
                    knobs = self._knobs_in(value)
                    if knobs:
                        _merge(self._bound.setdefault(key, {}), knobs)
            if self._state() == before:
                break
        for (_, name), knobs in self._bound.items():
            for knob in knobs:
                self.knobs[knob].names.add(name)

    def _state(self) -> int:
        return hash(tuple(sorted((repr(k), tuple(sorted(v.items()))) for k, v in self._bound.items())))

    def _flows(self, node: ast.AST) -> Iterator[tuple[Key, ast.expr]]:
        """(key, value expression) pairs an AST node creates."""
        if isinstance(node, ast.Assign):
            for target in node.targets:
                yield from self._targets(target, node.value)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and node.value is not None:
            yield from self._targets(node.target, node.value)
        elif isinstance(node, ast.NamedExpr):
            yield from self._targets(node.target, node.value)
        elif isinstance(node, ast.Call):
            yield from self._call_flows(node)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            for arg, default in zip(args.args[len(args.args) - len(args.defaults) :], args.defaults, strict=False):
                yield (id(node), arg.arg), default

    def _targets(self, target: ast.AST, value: ast.expr) -> Iterator[tuple[Key, ast.expr]]:
        if isinstance(target, (ast.Tuple, ast.List)):
            values = (
                value.elts
                if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts)
                else [value] * len(target.elts)
            )
            for elt, val in zip(target.elts, values, strict=False):
                yield from self._targets(elt, val)
            return
        key = self._key_of(target)
        if key is not None:
            yield key, value

    def _call_flows(self, call: ast.Call) -> Iterator[tuple[Key, ast.expr]]:
        """Arguments to the script's own functions (and classes' __init__) bind their parameters;
        keywords to its classes (`Hyperparameters(ttt_epochs=...)`) also bind fields."""
        name = _dotted(call.func).split(".")[-1]
        func = self.functions.get(name) if name not in self.classes else self.classes[name]
        if name in self.classes or name == "SimpleNamespace":
            for keyword in call.keywords:
                if keyword.arg is not None:
                    yield ("attr", keyword.arg), keyword.value
        if func is None:
            return
        params = [a.arg for a in (*func.args.posonlyargs, *func.args.args)]
        if params and params[0] in ("self", "cls") and (isinstance(call.func, ast.Attribute) or name in self.classes):
            params = params[1:]
        for param, arg in zip(params, call.args, strict=False):
            yield (id(func), param), arg
        for keyword in call.keywords:
            if keyword.arg is not None:
                yield (id(func), keyword.arg), keyword.value

    # ---------------------------------------------------------------- what values drive

    def _roles(self) -> list[LiteralLoop]:
        literal_loops = []
        for node in ast.walk(self.module):
            if isinstance(node, ast.For):
                literal_loops += self._for_roles(node)
            elif isinstance(node, ast.While) and isinstance(node.test, ast.Compare):
                bound: Flow = {}
                for comparator in node.test.comparators:
                    _merge(bound, self._knobs_in(comparator))
                self._mark(_growing(bound), "update_loop" if self._updates_in(node.body) else "loop", node.lineno)
            elif isinstance(node, ast.Call):
                self._call_roles(node)
            elif (
                isinstance(node, ast.BinOp)
                and isinstance(node.op, (ast.LShift, ast.Pow))
                and _literal(node.left) in (1, 2)
            ):
                self._mark(_growing(self._knobs_in(node.right)), "table_bits", node.lineno)
        return literal_loops

    def _for_roles(self, loop: ast.For) -> list[LiteralLoop]:
        """A loop's count grows with the knobs of its stop and shrinks with those of its step (and with
        divisors in its stop): the first kind multiply its work, the second size its chunks. A range
        that counts down (`range(hi, lo, -1)`) grows with its start instead."""
        call = loop.iter
        if not (isinstance(call, ast.Call) and _dotted(call.func) == "range" and call.args):
            return []
        args = call.args
        step = _literal(args[2]) if len(args) == 3 else 1
        down = isinstance(step, (int, float)) and step < 0
        stop = self._knobs_in(args[0] if len(args) == 1 else args[0] if down else args[1])
        if len(args) > 1:
            _merge(stop, self._knobs_in(args[1] if down else args[0], -1))
        stride = self._knobs_in(args[2], -1) if len(args) == 3 and not down else {}
        updates = self._updates_in(loop.body)
        self._mark(_growing(stop), "update_loop" if updates else "loop", loop.lineno)
        self._mark(_shrinking(stop) | _shrinking(stride), "update_chunk" if updates else "chunk", loop.lineno)
        count = self._count_literal(args[0]) if len(args) == 1 else None
        if updates and not stop and isinstance(count, int) and count > 2:
            return [LiteralLoop(count, loop.lineno)]
        return []

    def _count_literal(self, node: ast.AST) -> object:
        """A literal count, or a module constant holding one (`EPOCHS = 15`)."""
        if isinstance(node, ast.Name) and self.scopes.key(node, node.id) == (id(self.module), node.id):
            return self.constants.get(node.id)
        return _literal(node)

    def _call_roles(self, call: ast.Call) -> None:
        func = _dotted(call.func)
        last = func.split(".")[-1]
        if func == "range" and len(call.args) == 3:  # windows: range(0, total, stride), anywhere
            self._mark(_shrinking(self._knobs_in(call.args[2], -1)), "chunk", call.lineno)
        if last in _ALLOCATORS and call.args and func.split(".")[0] in ("np", "numpy", "torch"):
            size = call.args[0]
            for part in size.elts if isinstance(size, (ast.Tuple, ast.List)) else [size]:
                self._mark(_growing(self._knobs_in(part)), "table", call.lineno)

    def _mark(self, knobs: set[str], role: str, line: int) -> None:
        for name in knobs:
            self.knobs[name].roles.setdefault(role, line)

    def _updates_in(self, body: list[ast.stmt], depth: int = 0) -> bool:
        """A backward pass or an optimizer step in `body`, or in a function of the script it calls."""
        for stmt in body:
            for node in ast.walk(stmt):
                if not isinstance(node, ast.Call):
                    continue
                func = _dotted(node.func)
                last = func.split(".")[-1]
                if last in _UPDATE_CALLS and isinstance(node.func, ast.Attribute) and len(node.args) <= 1:
                    return True  # loss.backward(), opt.step(), LBFGS's opt.step(closure)
                if func.endswith(("autograd.grad", "autograd.backward")):
                    return True
                if depth < _MAX_CALL_DEPTH and last in self.functions and self._function_updates(last, depth):
                    return True
        return False

    def _function_updates(self, name: str, depth: int) -> bool:
        if name not in self._updates:
            self._updates[name] = False  # recursion guard
            self._updates[name] = self._updates_in(self.functions[name].body, depth + 1)
        return self._updates[name]
