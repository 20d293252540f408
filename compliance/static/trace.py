"""Abstract execution of a script: one pass from the top level, inlining local calls.

Each statement is visited once per call instance; values are replaced by sets
of data labels (see events.py), branches by whether the configuration makes
them reachable. Loops are visited once (the order inside one iteration is
what the legality rules need). Local functions and methods are inlined with
their argument labels, so data flow crosses function boundaries; library
calls pass their arguments' labels through. A node budget keeps a 150 KB
script well under a second.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import dispatch, online
from . import events as ev
from .events import Labels

if TYPE_CHECKING:
    from .native import Leak
    from .sources import Helper
from .config import NOT_NONE, UNKNOWN, ConfigResolver, same_folded, truthy

E: Labels = frozenset()
_ORDERING = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)
Func = ast.FunctionDef | ast.AsyncFunctionDef
Fold = Callable[[ast.expr], object]  # a constant's value, or config.UNKNOWN
_LOSS_FUNCS = {
    "cross_entropy",
    "nll_loss",
    "log_softmax",
    "log",
    "log2",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "kl_div",
}
_IO_FUNCS = {"glob", "iglob", "open", "fromfile", "memmap", "load", "read_bytes", "read_text", "from_file", "loadtxt"}
_SHAPE_FUNCS = {"len", "range", "numel", "size", "dim", "isinstance", "type", "id", "hasattr"}
_SHAPE_ATTRS = {"shape", "dtype", "device", "ndim", "is_cuda", "size", "nbytes", "itemsize"}
_NET_MODULES = (
    "urllib",
    "requests",
    "http.client",
    "socket",
    "huggingface_hub",
    "httpx",
    "aiohttp",
    "ftplib",
    "datasets.load_dataset",
    "torch.hub",
)
_NET_FUNCS = {
    "urlopen",
    "urlretrieve",
    "hf_hub_download",
    "snapshot_download",
    "load_dataset",
    "download_url_to_file",
    "load_state_dict_from_url",
}
_SHELL = {
    "os.system",
    "subprocess.run",
    "subprocess.call",
    "subprocess.check_call",
    "subprocess.check_output",
    "subprocess.Popen",
    "os.popen",
}
_FRESH_FACTORIES = {
    "zeros",
    "ones",
    "randn",
    "rand",
    "empty",
    "full",
    "tensor",
    "zeros_like",
    "ones_like",
    "randn_like",
    "empty_like",
    "full_like",
}
_SAVE_FUNCS = {"torch.save", "pickle.dump", "numpy.save", "numpy.savez", "numpy.savez_compressed", "json.dump"}
_NO_INLINE_METHODS = {
    "backward",
    "step",
    "zero_grad",
    "forward",
    "item",
    "detach",
    "to",
    "eval",
    "train",
    "parameters",
    "named_parameters",
    "state_dict",
    "load_state_dict",
}
_COLLECTIVES = {
    "all_gather",
    "gather",
    "all_gather_into_tensor",
    "all_gather_object",
    "gather_object",
    "reduce_scatter",
    "reduce_scatter_tensor",
    "all_to_all",
    "all_to_all_single",
    "scatter",
    "broadcast_object_list",
}
_PIECE_FUNCS = {"id_to_piece", "IdToPiece", "id_to_piece_bytes"}
_FILLERS = {"append", "extend", "insert", "update", "setdefault", "appendleft", "put", "add"}
_WRAPPERS = {"compile", "partial", "wraps", "jit", "script", "trace", "checkpoint", "no_grad", "inference_mode"}
_MASK_FUNCS = {"stack", "cat", "concatenate", "logical_and", "logical_or", "logical_not", "logical_xor"}
_BIG_PRIME = 1000
_MAX_DEPTH = 24
_BUDGET = 400_000


@dataclass
class Frame:
    fn: int | str  # id() of the function node, or "<module>"
    fid: int
    self_name: str | None = None
    env: dict[str, Labels] = field(default_factory=dict)
    consts: dict[str, object] = field(default_factory=dict)
    target_names: frozenset[str] = frozenset()
    cls: str | None = None
    in_init: bool = False
    returns: Labels = E
    hooks: bool = False
    optim: ev.Event | None = None
    locals_fn: dict[str, ast.AST] = field(default_factory=dict)
    fn_tables: dict[str, list[dispatch.Row]] = field(default_factory=dict)  # functions held in a table
    config_names: set[str] = field(default_factory=set)  # locals bound to a knob that did not fold
    parent: Frame | None = None  # the call a nested function was defined in
    created: dict[str, tuple[int, ...]] = field(default_factory=dict)  # local -> loops around the call that made it
    grad_names: frozenset[str] = frozenset()  # locals whose .backward() this function calls
    masks: set[str] = field(default_factory=set)  # locals holding a boolean mask over positions
    loop_depth: int = 0  # loops of this call around the statement
    returns_elts: list[Labels] | None = None  # per element, when every return is a tuple of one length
    returns_mixed: bool = False  # some return is not such a tuple
    objects: dict[str, str] = field(default_factory=dict)  # local -> the script class it was made from
    outer_loops: int = 0  # loops of the callers around this call


@dataclass
class Ctx:
    """What encloses the statement being visited."""

    loops: tuple[int, ...] = ()
    loop_vars: tuple[tuple[int, frozenset[str]], ...] = ()
    frames: tuple[int, ...] = ()
    active: bool = True
    no_grad: bool = False
    guards: frozenset[int] = frozenset()
    gates: tuple[int, ...] = ()  # unresolved branches around it (Tracer.gates)
    arms: tuple[tuple[int, int], ...] = ()  # (fork, 0 if body else 1) of the configuration's if/else around it

    def but(self, **changes: Any) -> Ctx:
        data = {**self.__dict__, **changes}
        return Ctx(**data)


@dataclass(frozen=True)
class Gate:
    """A branch whose condition the configuration could not decide."""

    line: int
    test: str  # the condition as written, for the report
    branch: str  # "if" | "else" | "called": a function only reached indirectly
    prior: bool | None = None  # what the configuration pgolf could see decides, if anything


class Tracer:
    def __init__(
        self,
        module: ast.Module,
        resolver: ConfigResolver,
        helpers: dict[str, Helper] | None = None,
        natives: dict[str, list[Leak]] | None = None,
        path: str = "",
    ) -> None:
        self.module = module
        self.res = resolver
        self.helpers = helpers or {}  # module name -> sources.Helper
        self.natives = natives or {}  # exported C function -> [native.Leak]
        self.path = path
        self.fn_file: dict[int | str, str] = {}  # id(function node) -> the file it is in
        self.helper_funcs: dict[str, dict[str, ast.AST]] = {}
        self.module_vars: dict[str, str] = {}  # name bound to a helper module object -> module name
        self.events: list[ev.Event] = []
        self.funcs: dict[str, Func] = {}
        self.methods: dict[str, list[tuple[str, Func]]] = {}
        self.classes: dict[str, ast.ClassDef] = {}
        self.attrs: dict[str, Labels] = {}
        self.self_attrs: dict[tuple[str, str], Labels] = {}
        self.entered: set[int] = set()
        self.stack: list[Frame] = []
        self.log_sum_exp: set[int] = set()  # max() calls that are half of a log-sum-exp, not a choice
        self.online_loops: set[int] = set()  # loops that record each position's hint before its update
        self.loss_forward = False
        self.budget = _BUDGET
        self.next_id = 0
        self.memo: dict[tuple[object, ...], Labels] = {}
        self.memo_elts: dict[tuple[object, ...], list[Labels] | None] = {}
        # the last local call's tuple return
        self.tuple_call: tuple[ast.AST | None, list[Labels] | None] = (None, None)
        self.gates: dict[int, Gate] = {}
        self.frame_names: dict[int, tuple[str, int]] = {}  # call instance -> (function, call line)
        self.def_frames: dict[int, Frame] = {}  # nested function -> the call that defined it
        self._lambdas: dict[int, ast.FunctionDef] = {}  # id(lambda node) -> its function
        self._fn_nodes: dict[int | str, ast.AST] = {}  # id(function node) -> the node
        self._ctx_loops: tuple[int, ...] = ()
        self._call_line = 0
        self.limits: list[str] = []  # analysis limits hit: the verdict can only be review
        self._grad_names: dict[int, Labels] = {}
        self.prime_names = _prime_tables(module)
        self._index()

    # ------------------------------------------------------------------ set-up
    def _index(self) -> None:
        self._index_module(self.module, self.path, own=True)
        for name, helper in self.helpers.items():
            self.helper_funcs[name] = self._index_module(helper.module, helper.rel, own=False)

    def _index_module(self, module: ast.Module, rel: str, own: bool) -> dict[str, ast.AST]:
        """Functions and classes of a module; a helper's also answer to their bare name, unless taken."""
        defs: dict[str, ast.AST] = {}
        for node in module.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                defs[node.name] = node
                self.fn_file[id(node)] = rel
                if own or node.name not in self.funcs:
                    self.funcs[node.name] = node
            elif isinstance(node, ast.ClassDef):
                defs[node.name] = node
                if own or node.name not in self.classes:
                    self.classes[node.name] = node
                self._data_paths(node)
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        self.fn_file[id(item)] = rel
                        self.methods.setdefault(item.name, []).append((node.name, item))
                        if item.name == "forward" and self._computes_loss(item, node):
                            self.loss_forward = True
        return defs

    def _data_paths(self, cls: ast.ClassDef) -> None:
        """`self.val_glob = join(root, "fineweb_val_*.bin")` in a config class: the attribute names the
        validation shards wherever the instance is read, whether or not the tracer sees it built."""
        for node in ast.walk(cls):
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                labels = frozenset().union(
                    *(
                        _literal_labels(c.value)
                        for c in ast.walk(node.value)
                        if isinstance(c, ast.Constant) and isinstance(c.value, str)
                    )
                )
                if not labels:
                    continue
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if isinstance(t, ast.Attribute):
                        self.attrs[t.attr] = self.attrs.get(t.attr, E) | labels

    def _computes_loss(self, fn: ast.AST, cls: ast.ClassDef | None = None, seen: frozenset[str] = frozenset()) -> bool:
        """The function calls a loss, itself or through a method of its class (`self._ce_loss(h, y)`)."""
        methods = {m.name: m for m in cls.body if isinstance(m, ast.FunctionDef)} if cls is not None else {}
        for n in ast.walk(fn):
            if not isinstance(n, ast.Call):
                continue
            if self._last(n.func) in _LOSS_FUNCS:
                return True
            callee = methods.get(_self_attr(n.func) or "") if isinstance(n.func, ast.Attribute) else None
            if (
                callee is not None
                and callee.name not in seen
                and self._computes_loss(callee, cls, seen | {callee.name})
            ):
                return True
        return False

    def _new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    # ------------------------------------------------------------------ entry
    def run(self) -> list[ev.Event]:
        root = Frame(fn="<module>", fid=self._new_id())
        self.stack.append(root)
        self.block(self.module.body, Ctx(frames=(root.fid,)))
        referenced = _referenced_names(self.module)
        for helper in self.helpers.values():
            referenced |= _referenced_names(helper.module)
        for name, fn in list(self.funcs.items()):
            if id(fn) not in self.entered:  # never called from the top level: trace on its own
                # dead code when nothing names it; reached some way the tracer cannot follow otherwise
                gate = self._gate(fn, f"{name} is only reached indirectly", "called")
                self.call_function(fn, [], {}, Ctx(frames=(root.fid,), active=name in referenced, gates=(gate,)), None)
        if self.budget <= 0:
            self.limits.append(f"the script is larger than the analysis budget ({_BUDGET:,} steps)")
        self.events.sort(key=lambda e: e.seq)
        return self.events

    def chain(self, event: ev.Event) -> str:
        """`main:1962 > prequant_ttt_adapt_adamw:1323`: the calls that reach an event."""
        parts = [f"{self.frame_names[f][0]}@{self.frame_names[f][1]}" for f in event.frames if f in self.frame_names]
        return " > ".join(parts + [f"line {event.line}"])

    def _gate(self, node: ast.AST, test: str, branch: str, prior: bool | None = None) -> int:
        gid = self._new_id()
        self.gates[gid] = Gate(getattr(node, "lineno", 0), test, branch, prior)
        return gid

    def emit(self, kind: str, node: ast.AST, labels: Labels, ctx: Ctx, **detail: Any) -> ev.Event:
        optim = detail.pop("optim", None)
        event = ev.Event(
            kind=kind,
            line=getattr(node, "lineno", 0),
            labels=frozenset(labels),
            seq=self._new_id(),
            loops=ctx.loops,
            frames=ctx.frames,
            active=ctx.active,
            no_grad=ctx.no_grad,
            loopvar_guards=ctx.guards,
            optim=optim,
            detail=detail,
            gates=ctx.gates,
            arms=ctx.arms,
            file=self.fn_file.get(self.frame.fn, self.path) if self.stack else self.path,
        )
        self.events.append(event)
        return event

    @property
    def frame(self) -> Frame:
        return self.stack[-1]

    # ------------------------------------------------------------------ statements
    def block(self, stmts: Iterable[ast.stmt], ctx: Ctx) -> None:
        for stmt in stmts:
            if self.budget <= 0:
                return
            self.budget -= 1
            self._ctx_loops = ctx.loops
            self.stmt(stmt, ctx)

    def stmt(self, node: ast.stmt, ctx: Ctx) -> None:
        handler = getattr(self, f"s_{type(node).__name__}", None)
        if handler is not None:
            handler(node, ctx)
            return
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.expr(child, ctx)

    def s_FunctionDef(self, node: ast.FunctionDef, ctx: Ctx) -> None:
        if len(self.stack) > 1:
            self.frame.locals_fn[node.name] = node
            self.def_frames[id(node)] = self.frame  # a closure reads the variables of this call

    s_AsyncFunctionDef = s_FunctionDef

    def s_ClassDef(self, node: ast.ClassDef, ctx: Ctx) -> None:
        for stmt in _class_body(node.body):
            if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
                labels = self.expr(stmt.value, ctx)
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                for t in targets:
                    if isinstance(t, ast.Name):
                        self.attrs[t.id] = self.attrs.get(t.id, E) | labels

    def s_Assign(self, node: ast.Assign, ctx: Ctx) -> None:
        if _pairwise(node):
            for target, value in zip(node.targets[0].elts, node.value.elts, strict=True):  # type: ignore[attr-defined]
                folded = self.res.fold(value, self.frame.consts)
                labels = self.expr(value, ctx)
                self.bind(target, labels, ctx, node, folded)
                self._note_binding(target, value, folded, labels)
            return
        labels = self.expr(node.value, ctx)
        if self._total(node.value) and self.frame.loop_depth == 0:
            # `loss_sum = nll.sum()` over the whole pass at once: a score as much as a running sum
            labels |= self._whole_pass_score(node, labels, ctx)
        if self._bind_tuple_return(node, ctx):
            return
        value = self.res.fold(node.value, self.frame.consts)
        for target in node.targets:
            if isinstance(target, ast.Name):
                self._manual_update(node, target.id, node.value, ctx)
            self.bind(target, labels, ctx, node, value)
            self._note_binding(target, node.value, value, labels)
            dispatch.note_assign(self, target, node.value, ctx)

    def _whole_pass_score(self, node: ast.AST, data: Labels, ctx: Ctx) -> Labels:
        """A whole pass's losses reduced at once: the score's id, and "sum", when `data` is one."""
        sid = self._maybe_score(node, data, ctx)
        return sid | ({"sum"} if sid else E)

    def _note_object(self, name: str, value: ast.expr) -> None:
        """`cache = NgramCache(v)`: calls of `cache.update` are the class's own method, not dict.update."""
        made = value.func.id if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) else None
        if made in self.classes:
            self.frame.objects[name] = made
        else:
            self.frame.objects.pop(name, None)

    def _own_method(self, func: ast.expr) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        """The script's method a call names when its receiver is a known instance of a script class."""
        if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)):
            return None
        for frame in (self.frame, self.stack[0]):
            cls = frame.objects.get(func.value.id)
            if cls is not None:
                return next((fn for owner, fn in self.methods.get(func.attr, []) if owner == cls), None)
        return None

    def _total(self, value: ast.expr) -> bool:
        """`x.sum()`, `np.sum(x)`, `x.mean()`: a whole array reduced to one number."""
        return isinstance(value, ast.Call) and self._last(value.func) in ("sum", "nansum", "mean", "nanmean")

    def _bind_tuple_return(self, node: ast.Assign, ctx: Ctx) -> bool:
        """`tok, prob, valid = state.process(ids)` where the function returns a tuple: element-wise."""
        call, elts = self.tuple_call
        target = node.targets[0]
        if (
            call is not node.value
            or elts is None
            or len(node.targets) != 1
            or not isinstance(target, (ast.Tuple, ast.List))
            or len(target.elts) != len(elts)
            or any(isinstance(e, ast.Starred) for e in target.elts)
        ):
            return False
        for element, labels in zip(target.elts, elts, strict=True):
            self.bind(element, labels, ctx, node, UNKNOWN)
        return True

    def _manual_update(self, node: ast.AST, name: str, value: ast.expr, ctx: Ctx) -> None:
        """`bias = (bias - lr * grad).clamp(...)` with grad from validation targets: a hand-written
        gradient step (ETLB, a SLOT delta without an optimizer) is an update like any other."""
        core = value
        while (
            isinstance(core, ast.Call)
            and isinstance(core.func, ast.Attribute)
            and core.func.attr in ("clamp", "clamp_", "clip", "detach", "float", "to", "contiguous")
        ):
            core = core.func.value
        if not (
            isinstance(core, ast.BinOp)
            and isinstance(core.op, ast.Sub)
            and isinstance(core.left, ast.Name)
            and core.left.id == name
        ):
            return
        if name not in self.frame.created or "val" in self.lookup(name):
            return  # a free buffer (zeros, a clone) stepped against data, not data itself (`x = x - mean`)
        step = self.expr(core.right, ctx)
        if {"val", "target"} <= step:
            made = self.frame.created.get(name, ctx.loops[:-1])
            optim = ev.Event(
                kind=ev.OPTIM,
                line=getattr(node, "lineno", 0),
                labels=frozenset({"fresh", "optim", "manual"}),
                seq=self._new_id(),
                loops=made,
                frames=ctx.frames,
                active=ctx.active,
            )
            self.emit(ev.UPDATE, node, step, ctx, optim=optim, manual=True)

    def _note_binding(self, target: ast.expr, value: ast.expr, folded: object, labels: Labels = E) -> None:
        """Remember locals that hold an unfolded knob, or a function (called later through the name).

        A value computed from data (validation or training tokens, a loop's position) is data even
        when a knob takes part in it: a branch on it is taken by the run, not chosen by its config.
        """
        if not isinstance(target, ast.Name):
            return
        self._note_object(target.id, value)
        frame = self.frame
        if isinstance(value, ast.Call) and self._last(value.func) in _FRESH_FACTORIES | {"clone", "copy"}:
            frame.created[target.id] = self._ctx_loops  # where a buffer is made: per window, or once
        if folded is UNKNOWN and _never_none(value, self):
            frame.consts[target.id] = NOT_NONE
        if not _is_data(labels) and self.res.is_config_test(value, frame.config_names):
            frame.config_names.add(target.id)
        else:
            frame.config_names.discard(target.id)
        loaded = self._loaded_module(value) if self.helpers else None
        if loaded is not None:
            self.module_vars[target.id] = loaded
        if self._is_mask(value):
            frame.masks.add(target.id)
        else:
            frame.masks.discard(target.id)
        fn = self._function_value(value)
        if fn is not None:
            frame.locals_fn[target.id] = fn
        elif target.id in frame.locals_fn and len(self.stack) > 1:
            del frame.locals_fn[target.id]

    def _is_mask(self, node: ast.expr) -> bool:
        """A boolean array over positions (`p > t`, `a & ~b`, `np.stack([m1, m2])`): writing through
        it (`hint[m] = ...`) fills chosen positions, it keys nothing by token value."""
        if isinstance(node, ast.Compare):
            return True
        if isinstance(node, ast.Name):
            return node.id in self.frame.masks
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Invert, ast.Not)):
            return self._is_mask(node.operand)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitAnd):  # `valid & (p >= tau)`
            return self._is_mask(node.left) or self._is_mask(node.right)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return self._is_mask(node.left) and self._is_mask(node.right)
        if isinstance(node, ast.BoolOp):
            return all(self._is_mask(v) for v in node.values)
        if isinstance(node, ast.Call) and self._last(node.func) in _MASK_FUNCS and node.args:
            parts = node.args[0].elts if isinstance(node.args[0], (ast.List, ast.Tuple)) else node.args
            return all(self._is_mask(p) for p in parts)
        return False

    def _function_value(self, value: ast.expr) -> ast.AST | None:
        """`f`, `torch.compile(f)`, `functools.partial(f, ...)`: the local function the value calls."""
        while isinstance(value, ast.Call) and self._last(value.func) in _WRAPPERS and value.args:
            value = value.args[0]
        if isinstance(value, ast.Name):
            target = self._resolve_local(value)
            return target if isinstance(target, (ast.FunctionDef, ast.AsyncFunctionDef)) else None
        if isinstance(value, ast.Attribute) and value.attr not in _NO_INLINE_METHODS:
            candidates = self.methods.get(value.attr)
            return candidates[0][1] if candidates else None
        if isinstance(value, ast.Lambda):
            return self._lambda_function(value)
        return None

    def _lambda_function(self, node: ast.Lambda) -> ast.FunctionDef:
        """`lambda: eval_ngram(...)` handed to a timer: a function whose body returns the expression."""
        fn = self._lambdas.get(id(node))
        if fn is None:
            # type_params: a field from Python 3.12, which compile() and unparse then expect
            since_312: dict[str, Any] = {"type_params": []} if sys.version_info >= (3, 12) else {}
            fn = ast.FunctionDef(
                name="<lambda>",
                args=node.args,
                body=[ast.Return(value=node.body)],
                decorator_list=[],
                returns=None,
                **since_312,
            )
            ast.copy_location(fn, node)
            ast.fix_missing_locations(fn)
            self._lambdas[id(node)] = fn
            self.fn_file[id(fn)] = self.fn_file.get(self.frame.fn, self.path) if self.stack else self.path
        if len(self.stack) > 1:
            self.def_frames[id(fn)] = self.frame
        return fn

    def s_AnnAssign(self, node: ast.AnnAssign, ctx: Ctx) -> None:
        if node.value is not None:
            self.bind(node.target, self.expr(node.value, ctx), ctx, node, self.res.fold(node.value, self.frame.consts))

    def s_AugAssign(self, node: ast.AugAssign, ctx: Ctx) -> None:
        labels = self.expr(node.value, ctx)
        old = self.expr(node.target, ctx) if not isinstance(node.target, ast.Name) else self.lookup(node.target.id)
        sid = self._maybe_score(node, labels, ctx) if isinstance(node.op, (ast.Add, ast.Sub)) else E
        labels |= sid | ({"sum"} if sid else E)  # a running total, not one value per token
        if isinstance(node.op, (ast.BitXor, ast.Mod)) or (isinstance(node.op, ast.Mult) and self._big(node.value)):
            labels |= {"hash"} | ({"thash"} if "target" in old | labels else E)  # `h ^= tok * P`
        if {"val", "hash"} <= labels and "loss" not in labels and not isinstance(node.op, (ast.BitXor, ast.Mult)):
            # `table += np.bincount(keys)`: counts of hashed validation contexts added into a table
            self.emit(ev.TABLE_WRITE, node, labels, ctx)
        self.bind(node.target, old | labels, ctx, node, UNKNOWN)

    def _maybe_score(self, node: ast.AST, labels: Labels, ctx: Ctx) -> Labels:
        """A validation loss added into a running sum is a score, unless it is the loss being trained on.

        The sum is tagged with the score's id, so a printed metric names the scores it reports.
        """
        if {"val", "loss"} <= labels and (ctx.no_grad or "gradloss" not in labels):
            sid = f"score#{getattr(node, 'lineno', 0)}"
            self.emit(ev.SCORE, node, labels, ctx, sid=sid)
            return frozenset({sid})
        return E

    def s_Return(self, node: ast.Return, ctx: Ctx) -> None:
        if node.value is None:
            return
        # a loop's mark means nothing outside the call that runs the loop; the callers' loops
        # still enclose the value returned to them
        frame = self.frame
        own = {f"lv{loop}" for loop in ctx.loops[frame.outer_loops :]}
        value = node.value
        if isinstance(value, ast.Tuple) and not any(isinstance(e, ast.Starred) for e in value.elts):
            # `return tok, prob, valid`: each element keeps its own labels for `a, b, c = f()`
            elts = [self.expr(e, ctx) - own for e in value.elts]
            frame.returns |= frozenset().union(*elts)
            if frame.returns_elts is None and not frame.returns_mixed:
                frame.returns_elts = elts
            elif frame.returns_elts is not None and len(frame.returns_elts) == len(elts):
                frame.returns_elts = [a | b for a, b in zip(frame.returns_elts, elts, strict=True)]
            else:
                frame.returns_elts, frame.returns_mixed = None, True
            return
        labels = self.expr(value, ctx) - own
        totals = [
            n.func.value.id
            for n in ast.walk(value)
            if isinstance(n, ast.Call)
            and self._total(n)
            and isinstance(n.func, ast.Attribute)
            and isinstance(n.func.value, ast.Name)
        ]
        if frame.loop_depth == 0 and frame.outer_loops == 0 and totals:
            # `return (nll_buffer.sum() / n).item()` from a pass called once: the whole pass's score
            labels |= self._whole_pass_score(node, frozenset().union(*(self.lookup(name) for name in totals)), ctx)
        frame.returns |= labels
        if not (isinstance(value, ast.Constant) and value.value is None):
            frame.returns_elts, frame.returns_mixed = None, True

    def s_If(self, node: ast.If, ctx: Ctx) -> None:
        sides = _ordered_sides(node.test)
        if sides is None:
            self.expr(node.test, ctx)
        else:  # the operands read once: they are the test, and they may be two scores of one token
            self._keep_the_better(node, sides, [self.expr(side, ctx) for side in sides], ctx)
        known = truthy(self.res.fold(node.test, self.frame.consts))
        guards = ctx.guards | self._loop_guards(node.test, ctx)
        body, orelse = self._branches(node, ctx, known)
        frame = self.frame
        before, env_before = dict(frame.consts), dict(frame.env)
        self._traced_branch(node.body, body.but(guards=guards), known is False)
        after_body, env_body = frame.consts, frame.env
        frame.consts = dict(before)
        if known is None:  # the else branch starts from what the if started from, not from its body
            frame.env = dict(env_before)
        self._traced_branch(node.orelse, orelse.but(guards=guards), known is True)
        after_else = frame.consts
        if known is None:  # either branch may have run: a name holds what either one left in it
            frame.env = {
                k: env_body.get(k, env_before.get(k, E)) | frame.env.get(k, env_before.get(k, E))
                for k in env_body.keys() | frame.env.keys()
            }
        # what the branch the run takes leaves behind; where it is not known, what both agree on
        if known is True:
            frame.consts = after_body
        elif known is False:
            frame.consts = after_else
        else:
            frame.consts = {
                k: v
                for k, v in after_body.items()
                if k in after_else and after_else[k] is v or (k in after_else and same_folded(after_else[k], v))
            }

    def _traced_branch(self, stmts: list[ast.stmt], ctx: Ctx, switched_off: bool) -> None:
        """A branch the configuration switches off is traced (its findings are reported, inactive),
        but what it assigns does not flow on: the run never assigned it."""
        if not switched_off:
            self.block(stmts, ctx)
            return
        frame = self.frame
        env = dict(frame.env)
        self.block(stmts, ctx)
        frame.env = env

    def _keep_the_better(self, node: ast.If, sides: list[ast.expr], labels: list[Labels], ctx: Ctx) -> None:
        """`if new_nll < old_nll: scored[t] = new_nll`: of two validation scores of one token, the lower is
        kept, in place (C4, like `min(a, b)`). Only a write into an element counts: a best-so-far scalar
        (`best = loss`) selects no token's score."""
        if not all({"val", "loss"} <= side and "sum" not in side for side in labels):
            return
        written = {ast.dump(side) for side in sides}
        for stmt in node.body:
            if isinstance(stmt, ast.Assign) and ast.dump(stmt.value) in written:
                if any(isinstance(target, ast.Subscript) for target in stmt.targets):
                    self.emit(ev.BEST_OF, node, labels[0] | labels[1], ctx)
                    return

    def _branches(self, node: ast.If | ast.IfExp, ctx: Ctx, known: bool | None) -> tuple[Ctx, Ctx]:
        """The contexts of the two branches.

        A branch a knob decides is a gate: the configuration's answer is its prior, and the logs
        may overrule it (a knob set where pgolf cannot see it, e.g. a launcher script). A branch
        the data decides runs. A constant condition decides for good.
        """
        config = self.res.is_config_test(node.test, self.frame.config_names)
        if known is None and config:
            config = self.res.classify(node.test, self.frame.consts, self.frame.config_names) == "config"
        if not config:
            return ctx.but(active=ctx.active and known is not False), ctx.but(active=ctx.active and known is not True)
        test = _source_of(node.test)
        body = self._gate(node, test, "if", None if known is None else known)
        orelse = self._gate(node, test, "else", None if known is None else not known)
        # One run takes one side of a configuration's if/else: what its two sides do is never in sequence.
        return (
            ctx.but(gates=ctx.gates + (body,), arms=ctx.arms + ((body, 0),)),
            ctx.but(gates=ctx.gates + (orelse,), arms=ctx.arms + ((body, 1),)),
        )

    def e_IfExp(self, node: ast.IfExp, ctx: Ctx) -> Labels:
        """`a if cond else b`: a configuration gate when cond is a knob."""
        self.expr(node.test, ctx)
        known = truthy(self.res.fold(node.test, self.frame.consts))
        body, orelse = self._branches(node, ctx, known)
        out = E
        if known is not False:
            out |= self.expr(node.body, body)
        else:
            self.expr(node.body, body)
        if known is not True:
            out |= self.expr(node.orelse, orelse)
        else:
            self.expr(node.orelse, orelse)
        return out

    def s_Expr(self, node: ast.Expr, ctx: Ctx) -> None:
        labels = self.expr(node.value, ctx)
        fold = lambda n: self.res.fold(n, self.frame.consts)  # noqa: E731
        fragments, maybe = _log_fragments(node.value, fold), _log_fragments(node.value, fold, choices=True)
        if fragments or maybe:
            channel = _source_of(node.value.func) if isinstance(node.value, ast.Call) else "?"
            self.emit(
                ev.LOG,
                node,
                labels,
                ctx,
                fragments=fragments,
                maybe_fragments=maybe,
                channel=channel,
                gated_fields=self._gated_fields(node.value, ctx) if self.natives else (),
            )

    def _gated_fields(self, call: ast.expr, ctx: Ctx) -> tuple[str, ...]:
        """The text just before each printed value that carries a target-gated output (`within_gate=`):
        the logs then show whether that channel ever fired. Read from the names the value uses, so
        a print through a helper (`log0(f"...")`, whose return carries nothing) counts too."""
        out = []
        for arg in getattr(call, "args", []):
            if not isinstance(arg, ast.JoinedStr):
                continue
            before = ""
            for part in arg.values:
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    before += part.value
                elif isinstance(part, ast.FormattedValue) and not _float_format(part):
                    names = {n.id for n in ast.walk(part.value) if isinstance(n, ast.Name)}
                    # the names say whether to look; the value's own labels decide (a .numel() is no count)
                    if (
                        any("tgate" in self.lookup(n) for n in names)
                        and before.strip()
                        and "tgate" in self.expr(part.value, ctx)
                    ):
                        out.append(before.split()[-1])
                    before = ""
        return tuple(out)

    def _loop_guards(self, test: ast.expr, ctx: Ctx) -> frozenset[int]:
        names = {n.id for n in ast.walk(test) if isinstance(n, ast.Name)}
        return frozenset(loop for loop, loop_names in ctx.loop_vars if loop_names & names)

    def s_For(self, node: ast.For, ctx: Ctx) -> None:
        labels = self.expr(node.iter, ctx)
        runs = self._loop_runs(node.iter)
        loop = self._new_id()
        key = ("online", id(node))
        if key not in self.memo:
            self.memo[key] = online.records_before_update(node)  # type: ignore[assignment]
        if self.memo[key]:
            self.online_loops.add(loop)
        names = frozenset(n.id for n in ast.walk(node.target) if isinstance(n, ast.Name))
        inner = ctx.but(
            loops=ctx.loops + (loop,),
            loop_vars=ctx.loop_vars + ((loop, names),),
            active=ctx.active and runs is not False,
        )
        # what the loop variable selects carries the loop's mark: a score whose data lacks it scores
        # the same tokens on every pass of the loop (epochs), one that has it moves on (chunks)
        byte_loop = {"bytelevel"} if {"pbytes", "target"} <= labels else E  # for b in piece_bytes[tok]
        self.bind(node.target, labels | {f"lv{loop}"} | byte_loop, inner, node, UNKNOWN)
        self.frame.loop_depth += 1
        try:
            self._loop_body(node, inner)
        finally:
            self.frame.loop_depth -= 1
        self.block(node.orelse, ctx)

    s_AsyncFor = s_For

    def _loop_body(self, node: ast.For, inner: Ctx) -> None:
        variants = list(dispatch.loop_variants(self, node, inner))
        for binding, variant in variants:  # `for label, scorer in passes:` once per function it names
            saved = dict(self.frame.locals_fn)
            self.frame.locals_fn.update(binding)
            self.block(node.body, variant)
            self.frame.locals_fn = saved
        if not variants:
            self.block(node.body, inner)

    def _loop_runs(self, it: ast.expr) -> bool | None:
        """False when `range(...)` folds to an empty range under the configuration."""
        if isinstance(it, ast.Call) and self._last(it.func) == "range" and it.args:
            values = [self.res.fold(a, self.frame.consts) for a in it.args]
            if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                try:
                    return len(range(*values)) > 0
                except (TypeError, ValueError):
                    return None
        return None

    def s_While(self, node: ast.While, ctx: Ctx) -> None:
        self.expr(node.test, ctx)
        known = truthy(self.res.fold(node.test, self.frame.consts))
        loop = -self._new_id()  # negative: a while loop, whose passes no variable tells apart
        names = frozenset(n.id for n in ast.walk(node.test) if isinstance(n, ast.Name))
        inner = ctx.but(
            loops=ctx.loops + (loop,),
            loop_vars=ctx.loop_vars + ((loop, names),),
            active=ctx.active and known is not False,
        )
        self.frame.loop_depth += 1
        try:
            self.block(node.body, inner)
        finally:
            self.frame.loop_depth -= 1
        self.block(node.orelse, ctx)

    def s_With(self, node: ast.With, ctx: Ctx) -> None:
        no_grad = ctx.no_grad
        for item in node.items:
            labels = self.expr(item.context_expr, ctx)
            mode = self._grad_mode(item.context_expr)
            if mode is not None:
                no_grad = mode
            if item.optional_vars is not None:  # `with open(val_path) as f`: f reads what the path names
                self.bind(item.optional_vars, labels, ctx, node, UNKNOWN)
        self.block(node.body, ctx.but(no_grad=no_grad))

    s_AsyncWith = s_With

    def _grad_mode(self, node: ast.expr) -> bool | None:
        target = node.func if isinstance(node, ast.Call) else node
        last = self._last(target)
        if last in ("no_grad", "inference_mode"):
            if isinstance(node, ast.Call) and node.args and last == "inference_mode":
                return truthy(self.res.fold(node.args[0])) is not False
            return True
        if last == "enable_grad":
            return False
        return None

    def s_Try(self, node: ast.Try, ctx: Ctx) -> None:
        self.block(node.body, ctx)
        for handler in node.handlers:
            self.block(handler.body, ctx)
        self.block(node.orelse, ctx)
        self.block(node.finalbody, ctx)

    s_TryStar = s_Try

    def s_Global(self, node: ast.stmt, ctx: Ctx) -> None:
        return None

    s_Nonlocal = s_Global
    s_Import = s_Global
    s_ImportFrom = s_Global

    # ------------------------------------------------------------------ binding
    def lookup(self, name: str) -> Labels:
        frame: Frame | None = self.frame
        while frame is not None:  # the function, then the functions it is nested in
            if name in frame.env:
                return frame.env[name]
            frame = frame.parent
        return self.stack[0].env.get(name, E)

    def bind(self, target: ast.expr, labels: Labels, ctx: Ctx, node: ast.AST, value: object) -> None:
        frame = self.frame
        if isinstance(target, ast.Name):
            if target.id in frame.target_names:
                labels = labels | {"target"}
            frame.env[target.id] = labels
            if value is UNKNOWN:
                frame.consts.pop(target.id, None)
            else:
                frame.consts[target.id] = value
        elif isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                self.bind(elt, labels, ctx, node, UNKNOWN)
        elif isinstance(target, ast.Starred):
            self.bind(target.value, labels, ctx, node, UNKNOWN)
        elif isinstance(target, ast.Attribute):
            self.expr(target.value, ctx)
            if self._is_self(target.value):
                if frame.in_init:
                    # Labels flowing in from the constructor arguments stay with the instance;
                    # data the constructor reads itself (a validation shard) is the class's.
                    labels = labels - frame.env.get(frame.self_name or "", E)
                    if not labels:
                        return
                key = (frame.cls or "", target.attr)
                self.self_attrs[key] = self.self_attrs.get(key, E) | labels
            self.attrs[target.attr] = self.attrs.get(target.attr, E) | labels
        elif isinstance(target, ast.Subscript):
            self._subscript_write(target, labels, ctx, node)

    def _subscript_write(self, target: ast.Subscript, labels: Labels, ctx: Ctx, node: ast.AST) -> None:
        key = self.expr(target.slice, ctx)  # a write keyed by (context, token) is how counts are kept: no finding
        if (
            "val" in key
            and "loss" not in labels
            and _is_table_write(key, target, node)
            and not self._is_mask(target.slice)
        ):
            self.emit(ev.TABLE_WRITE, node, key | labels, ctx)
        if isinstance(target.value, ast.Name):
            name = target.value.id
            env = self.frame.env if name in self.frame.env else self.stack[0].env
            env[name] = env.get(name, E) | labels | (key - {"target", "hash", "thash", "shift"})
        elif isinstance(target.value, ast.Attribute):
            # self.hints[1:] = out: the attribute holds what was written into it
            self.bind(target.value, self.expr(target.value, ctx) | labels, ctx, node, UNKNOWN)
        else:
            self.expr(target.value, ctx)

    def _check_key(self, node: ast.Subscript, key: Labels, ctx: Ctx) -> None:
        """A table read at a key hashed from the target itself: P(realized token) without the vocabulary."""
        if "thash" in key:
            self.emit(ev.NGRAM_KEY, node, key, ctx)

    def _is_self(self, node: ast.expr) -> bool:
        fn = self.stack[-1]
        return isinstance(node, ast.Name) and fn.self_name is not None and node.id == fn.self_name

    # ------------------------------------------------------------------ expressions
    def expr(self, node: ast.expr | None, ctx: Ctx) -> Labels:
        if node is None:
            return E
        self.budget -= 1
        handler = getattr(self, f"e_{type(node).__name__}", None)
        if handler is not None:
            labels: Labels = handler(node, ctx)
            return labels
        out = E
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                out |= self.expr(child, ctx)
        return out

    def e_Dict(self, node: ast.Dict, ctx: Ctx) -> Labels:
        """A checkpoint `{"val_bpb": val_bpb, "model": sd}`: a summed validation score filed under a key is
        a result written beside the weights, not data from the validation tokens (it keeps its score id)."""
        out = E
        for key, value in zip(node.keys, node.values, strict=True):
            labels = self.expr(key, ctx) | self.expr(value, ctx)
            if isinstance(key, ast.Constant) and _is_summed_score(labels):
                labels -= {"val", "loss"}
            out |= labels
        return out

    def e_Constant(self, node: ast.Constant, ctx: Ctx) -> Labels:
        if isinstance(node.value, str):
            return _literal_labels(node.value)
        return E

    def e_JoinedStr(self, node: ast.JoinedStr, ctx: Ctx) -> Labels:
        """`f"fineweb_{split}_sp1024.bin"` with split known to be "val": the path it builds names the split."""
        out = E
        text = ""
        for part in node.values:
            if isinstance(part, ast.Constant):
                text += str(part.value)
                continue
            if isinstance(part, ast.FormattedValue):
                out |= self.expr(part.value, ctx)
                value = self.res.fold(part.value, self.frame.consts)
                text += value if isinstance(value, str) else "\0"
        return out | _literal_labels(text)

    def e_Name(self, node: ast.Name, ctx: Ctx) -> Labels:
        labels = self.lookup(node.id)
        if node.id in self.frame.grad_names and not ctx.no_grad:
            labels |= {"gradloss"}
        return labels

    def e_Attribute(self, node: ast.Attribute, ctx: Ctx) -> Labels:
        if node.attr in _SHAPE_ATTRS:
            return E
        base = self.expr(node.value, ctx)
        if self._is_self(node.value):
            return base | self.self_attrs.get((self.frame.cls or "", node.attr), E)
        return base | self.attrs.get(node.attr, E)

    def e_Subscript(self, node: ast.Subscript, ctx: Ctx) -> Labels:
        base = self.expr(node.value, ctx)
        key = self.expr(node.slice, ctx)
        self._check_key(node, key, ctx)
        out = base | (key - {"hash", "thash", "shift"})
        if "val" in base and ("shift" in key or _is_shifted(node.slice)):
            out |= {"target"}  # the stream one position on: the tokens being predicted
        elif "target" in base and _restricts(node.slice):
            out |= {"tsub"}  # some of the targets (a mask, a prefix): maybe only the scored context
        return out

    def e_Slice(self, node: ast.Slice, ctx: Ctx) -> Labels:
        """Only a lower bound one past a position selects the targets; `[i:j + 1]` is the window with its
        last target."""
        lower = self.expr(node.lower, ctx)
        rest = self.expr(node.upper, ctx) | self.expr(node.step, ctx)
        return lower | (rest - {"shift"})

    def e_BinOp(self, node: ast.BinOp, ctx: Ctx) -> Labels:
        if isinstance(node.op, ast.Add):
            self.log_sum_exp |= _log_sum_exp_max(node)
        left, right = self.expr(node.left, ctx), self.expr(node.right, ctx)
        out = left | right
        if isinstance(node.op, ast.Div) and "loss" in left and "sum" not in left and {"pbytes", "target"} <= right:
            out |= {"spread"}  # a token's log-probability divided among its bytes: p^(1/n) per byte
        if isinstance(node.op, ast.Add) and (_is_one(node.left) or _is_one(node.right)):
            out |= {"shift"}  # position + 1: where the next token, the target, sits
        elif isinstance(node.op, ast.Sub):
            out -= {"shift"}  # back into the context
        if isinstance(node.op, (ast.BitXor, ast.Mod)) or (
            isinstance(node.op, ast.Mult) and (self._big(node.left) or self._big(node.right))
        ):
            out |= {"hash"}
            if "target" in out:
                out |= {"thash"}  # a hash that mixes in the token being predicted
        return out

    def e_Compare(self, node: ast.Compare, ctx: Ctx) -> Labels:
        out = self.expr(node.left, ctx)
        for comp in node.comparators:
            out |= self.expr(comp, ctx)
        return out - {"hash", "loss"}

    def e_Lambda(self, node: ast.Lambda, ctx: Ctx) -> Labels:
        return E

    def e_ListComp(self, node: ast.AST, ctx: Ctx) -> Labels:
        out = E
        for gen in node.generators:  # type: ignore[attr-defined]
            labels = self.expr(gen.iter, ctx)
            self.bind(gen.target, labels, ctx, node, UNKNOWN)
            for cond in gen.ifs:
                self.expr(cond, ctx)
            out |= labels
        elt = node.elt if hasattr(node, "elt") else None
        if elt is not None:
            out |= self.expr(elt, ctx)
        if isinstance(node, ast.DictComp):
            out |= self.expr(node.key, ctx) | self.expr(node.value, ctx)
        return out

    e_SetComp = e_ListComp
    e_GeneratorExp = e_ListComp
    e_DictComp = e_ListComp

    # ------------------------------------------------------------------ calls
    def e_Call(self, node: ast.Call, ctx: Ctx) -> Labels:
        func = node.func
        dotted = self.res.dotted(func) or ""
        last = self._last(func)
        receiver = self.expr(func.value, ctx) if isinstance(func, ast.Attribute) else E
        arg_labels = [self.expr(a, ctx) for a in node.args]
        kw_labels = {k.arg or "**": self.expr(k.value, ctx) for k in node.keywords}
        args = frozenset().union(*arg_labels, *kw_labels.values())
        if last in self.natives:
            self._native_call(node, last, args, ctx)
        if last in ("append", "insert", "extend"):
            dispatch.note_fill(self, node, ctx)
        candidates = dispatch.call_candidates(self, node, ctx)
        if candidates:
            self._call_line = node.lineno
            return frozenset().union(
                *(local_call(self, fn, node, receiver, arg_labels, kw_labels, inner) for fn, inner in candidates)
            )
        special = self._special_call(node, dotted, last, receiver, arg_labels, kw_labels, args, ctx)
        if special is not None:
            return special
        local = self._resolve_local(func)
        if local is not None:
            self._call_line = node.lineno
            out = local_call(self, local, node, receiver, arg_labels, kw_labels, ctx)
            self.tuple_call = (node, self.tuple_call[1])
            return out
        if isinstance(func, (ast.Name, ast.Attribute, ast.Subscript)) and self._is_object_call(func):
            out = receiver | args | self.expr(func, ctx)
            if self.stack[-1].hooks and {"val", "train"} & (args | receiver):
                self.emit(ev.CALIB, node, args | receiver, ctx)
            if self.loss_forward and isinstance(func, ast.Name) and len(node.args) >= 2:
                self._mark_target(node.args[1])
                out |= {"loss"}
            return out
        if any(label.startswith("new") for label in receiver):
            return receiver | _no_identity(args)  # `lora.to(device)`: still the receiver, whatever the args
        return receiver | args

    def _is_object_call(self, func: ast.expr) -> bool:
        """A call of a value (a model instance) rather than of a library function."""
        root = func
        while isinstance(root, (ast.Attribute, ast.Subscript)):
            root = root.value
        if isinstance(root, ast.Name) and root.id in self.res.aliases:
            return False
        return not (isinstance(func, ast.Attribute) or (isinstance(func, ast.Name) and func.id in __builtins_names__))

    def _special_call(
        self,
        node: ast.Call,
        dotted: str,
        last: str | None,
        receiver: Labels,
        arg_labels: list[Labels],
        kw_labels: dict[str, Labels],
        args: Labels,
        ctx: Ctx,
    ) -> Labels | None:
        if last in _LOSS_FUNCS:
            if len(node.args) >= 2:
                self._mark_target(node.args[1])
            elif "target" in {k.arg for k in node.keywords}:
                self._mark_target(next(k.value for k in node.keywords if k.arg == "target"))
            return args | receiver | {"loss"}
        if last in _SHAPE_FUNCS:
            # a length is no data, except the byte length of a token's piece
            return (args | receiver) & {"pbytes", "target"} if "pbytes" in args | receiver else E
        if last in _PIECE_FUNCS:
            return args | receiver | {"pbytes"}  # a piece's text: its bytes are what val_bpb counts
        if last == "repeat" and len(arg_labels) >= 2 and {"pbytes", "target"} <= arg_labels[1]:
            return args | receiver | {"bytelevel"}  # np.repeat(per_token, byte_counts): one entry per byte
        if last == "multinomial" or last == "randint" or last == "generate":
            return E  # self-generated tokens carry no data
        if last == "backward" or dotted.endswith("autograd.grad"):
            data = receiver | args
            self.emit(ev.UPDATE, node, data, ctx, optim=self._current_optim())
            return E
        if self._is_optimizer(dotted, last):
            params = arg_labels[0] if arg_labels else kw_labels.get("params", E)
            labels = _no_identity(args) | params | {"optim"}  # it steps what its params belong to
            if "modparams" in params:  # a module's parameters (a model, a LoRA): no bare delta or bias
                labels -= {"fresh"}
            event = self.emit(ev.OPTIM, node, labels, ctx)
            self.frame.optim = event
            return labels
        if last in ("register_forward_hook", "register_forward_pre_hook"):
            # a hook that only captures activations (SLOT's hidden state) is no calibration:
            # calibration accumulates statistics (X^T X) in the hook or around it
            fn = next((f for f in self.stack[::-1] if f.fn != "<module>"), None)
            node_fn = self._fn_nodes.get(fn.fn) if fn else None
            if node_fn is not None and _gram_or_patch(node_fn):
                self.frame.hooks = True
            return receiver | args
        if last == "remove" and not node.args and self.frame.hooks:
            self.frame.hooks = False
            return E
        if last == "load_state_dict":
            if "copy" in args:  # a snapshot taken earlier is put back: the state in between is thrown away
                self.emit(ev.RESTORE, node, args, ctx)
            if isinstance(node.func, ast.Attribute):  # the receiver now holds the weights of what it loaded
                self.bind_inplace(node.func.value, frozenset(a for a in args if a.startswith("new")), ctx, node)
            return E
        if last == "requires_grad_" or (last in _FRESH_FACTORIES and _kw_true(node, "requires_grad")):
            return receiver | args | {"fresh"}
        if last == "Parameter" and not self._resolve_local(node.func):
            return args | {"fresh"}
        if last in ("parameters", "named_parameters") and isinstance(node.func, ast.Attribute):
            return receiver | args | {"modparams"}
        if self._module_class(dotted, last) and len(self.stack) > 1 and not self._resolve_local(node.func):
            label = f"new{node.lineno}"  # `probe = nn.Linear(d, v)` in a function: an object of its own
            self.emit(ev.NEW, node, E, ctx, label=label)
            held = args if last in _CONTAINERS else _no_identity(args)
            return held | receiver | {label}
        if last in ("deepcopy", "clone"):
            return receiver | args | {"copy"}
        if (
            last == "at"
            and isinstance(node.func, ast.Attribute)
            and node.args
            and len(node.args) >= 2
            and self._names_module(node.func.value)
        ):
            # np.add.at(table, keys, 1): a table write at keys
            key, values = arg_labels[1], frozenset().union(*arg_labels[2:])
            if "val" in key and "loss" not in values:
                self.emit(ev.TABLE_WRITE, node, key | values, ctx)
            self.bind_inplace(node.args[0], (key - {"target", "hash", "thash", "shift"}) | values, ctx, node)
            return E
        if (
            last in ("index_add_", "scatter_add_", "index_put_", "put_")
            and len(arg_labels) >= 2
            and "val" in arg_labels[1 if last != "put_" else 0]
            and "loss" not in args
        ):
            self.emit(ev.TABLE_WRITE, node, args, ctx)
        if last in (
            "add_",
            "copy_",
            "index_add_",
            "scatter_add_",
            "put_",
            "index_put_",
            "scatter_",
            "fill_",
            "masked_fill_",
            "index_fill_",
        ):
            if "loss" in args:
                args |= self._maybe_score(node, args, ctx)
            if isinstance(node.func, ast.Attribute):
                self.bind_inplace(node.func.value, args, ctx, node)
            return receiver | args
        if (
            last in _FILLERS
            and isinstance(node.func, ast.Attribute)
            and not self._names_module(node.func.value)
            and self._own_method(node.func) is None
        ):
            # a list or dict filled in place carries what was put in it
            if "loss" in args and last in ("append", "extend"):
                args |= self._maybe_score(node, args, ctx)
            self.bind_inplace(node.func.value, args, ctx, node)
            return receiver | args
        if last in _COLLECTIVES:
            # dist.gather(x, out_list): the outputs hold what the inputs held
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                if isinstance(arg, (ast.Name, ast.Attribute, ast.Subscript)):
                    self.bind_inplace(arg, args, ctx, node)
            return args | receiver
        if dotted in _SAVE_FUNCS or (last == "save" and "torch" in dotted):
            self.emit(ev.SAVE, node, args, ctx, call=dotted)
            return E
        if (
            "sentencepiece" in dotted.lower()
            or last == "SentencePieceTrainer"
            or (last == "train" and "SentencePieceTrainer" in dotted)
        ):
            if "val" in args:
                self.emit(ev.TOKENIZER, node, args, ctx)
            return args
        if self._is_network(dotted, last, args):
            self.emit(ev.NETWORK, node, args, ctx, call=dotted or last)
            return args
        if last in ("min", "max") and not node.keywords and len(node.args) >= 2 and id(node) not in self.log_sum_exp:
            scored = [a for a in arg_labels if {"val", "loss"} <= a]
            if len(scored) >= 2:
                self.emit(ev.BEST_OF, node, args, ctx)
        if last in _IO_FUNCS and ({"val", "train"} & args):
            self.emit(ev.READ, node, args, ctx, call=dotted or last)
        return None

    def _big(self, node: ast.expr) -> bool:
        """A large integer constant, or a table of them (hash primes): multiplying by one hashes."""
        if isinstance(node, ast.Constant):
            return isinstance(node.value, int) and not isinstance(node.value, bool) and abs(node.value) > _BIG_PRIME
        if isinstance(node, ast.Call) and node.args:
            return self._big(node.args[0])  # np.uint64(36313)
        if isinstance(node, ast.Subscript):
            return self._big(node.value)  # PRIMES[k % 5]
        if isinstance(node, ast.Attribute):
            return node.attr in self.prime_names
        return isinstance(node, ast.Name) and node.id in self.prime_names

    def _helper_named(self, name: str) -> str | None:
        """The helper module a name stands for: `import ngram_tilt as nt`, or a module loaded by path."""
        if name in self.module_vars:
            return self.module_vars[name]
        target = self.res.aliases.get(name, "")
        top = target.split(".")[0]
        return top if top in self.helpers and target == top else None

    def _loaded_module(self, value: ast.expr) -> str | None:
        """`mod = load_local_module(Path(...) / "helper.py", ...)`, or a function that does that."""
        texts = [n.value for n in ast.walk(value) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        if isinstance(value, ast.Call):
            local = self._resolve_local(value.func)
            if isinstance(local, (ast.FunctionDef, ast.AsyncFunctionDef)):
                texts += [n.value for n in ast.walk(local) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        for text in texts:
            for name in self.helpers:
                if text.endswith(f"{name}.py") or text == name:
                    return name
        return None

    def _native_call(self, node: ast.Call, last: str | None, args: Labels, ctx: Ctx) -> None:
        """A call into a C kernel whose output at some argument is gated by the token being scored."""
        for leak in self.natives.get(last or "", ()):
            if leak.param < len(node.args):
                root = _root_name(node.args[leak.param])
                if root is not None:
                    self.bind_inplace(root, args | {"tgate"}, ctx, node)
                self.emit(
                    ev.NATIVE_GATE,
                    node,
                    args | {"tgate"},
                    ctx,
                    kernel=leak.file,
                    kernel_line=leak.line,
                    seed_line=leak.seed_line,
                    output=leak.param_name,
                    call=last,
                )

    def _names_module(self, node: ast.expr) -> bool:
        root = node
        while isinstance(root, ast.Attribute):
            root = root.value
        return isinstance(root, ast.Name) and root.id in self.res.aliases and root.id not in self.frame.env

    def bind_inplace(self, target: ast.expr, labels: Labels, ctx: Ctx, node: ast.AST) -> None:
        if isinstance(target, ast.Name):
            self.frame.env[target.id] = self.lookup(target.id) | labels
        elif isinstance(target, ast.Subscript):
            self._subscript_write(target, labels, ctx, node)
        elif isinstance(target, ast.Attribute):
            self.bind(target, self.expr(target, ctx) | labels, ctx, node, UNKNOWN)

    def _mark_target(self, node: ast.expr) -> None:
        if isinstance(node, ast.Name):
            frame = self.frame
            frame.env[node.id] = frame.env.get(node.id, E) | {"target"}

    def _current_optim(self) -> ev.Event | None:
        for frame in reversed(self.stack):
            if frame.optim is not None:
                return frame.optim
        return None

    def _is_optimizer(self, dotted: str, last: str | None) -> bool:
        if dotted.startswith("torch.optim.") and last and last[:1].isupper() and "lr_scheduler" not in dotted:
            return True
        cls = self.classes.get(last or "")
        if cls is None:
            return False
        return any(self._last(b) == "Optimizer" for b in cls.bases)

    @staticmethod
    def _module_class(dotted: str, last: str | None) -> bool:
        """A torch.nn layer or container (`nn.Linear`, `torch.nn.ModuleList`)."""
        return bool(
            last
            and last[:1].isupper()
            and (dotted.startswith("torch.nn.") or dotted.startswith("nn."))
            and last not in ("Parameter", "Module", "functional")
        )

    def _is_network(self, dotted: str, last: str | None, args: Labels) -> bool:
        if last in _NET_FUNCS or any(dotted == m or dotted.startswith(m + ".") for m in _NET_MODULES):
            return True
        return dotted in _SHELL and "url" in args

    def _resolve_local(self, func: ast.expr) -> ast.AST | None:
        if isinstance(func, ast.Name):
            for frame in reversed(self.stack):
                if func.id in frame.locals_fn:
                    return frame.locals_fn[func.id]
            return self.funcs.get(func.id) or self.classes.get(func.id)
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            helper = self._helper_named(func.value.id)
            if helper is not None:
                return self.helper_funcs.get(helper, {}).get(func.attr)
        own = self._own_method(func)
        if own is not None:
            return own
        if isinstance(func, ast.Attribute) and func.attr not in _NO_INLINE_METHODS:
            if isinstance(func.value, ast.Name) and func.value.id in self.res.aliases:
                return None
            candidates = self.methods.get(func.attr)
            if candidates:
                return candidates[0][1]
        return None

    @staticmethod
    def _last(node: ast.expr) -> str | None:
        if isinstance(node, ast.Attribute):
            return node.attr
        if isinstance(node, ast.Name):
            return node.id
        return None

    # ------------------------------------------------------------------ inlining
    def _targets_of(self, fn: ast.AST) -> frozenset[str]:
        key = ("targets", id(fn))
        if key not in self.memo:
            self.memo[key] = _target_names(fn)
        return self.memo[key]

    def _collects_statistics(self, fn: ast.AST) -> bool:
        """A function that patches a module's forward, or accumulates X^T X: quantization calibration."""
        key = ("stats", id(fn))
        if key not in self.memo:
            self.memo[key] = _gram_or_patch(fn)  # type: ignore[assignment]
        return bool(self.memo[key])

    def _backward_names(self, fn: ast.AST) -> frozenset[str]:
        key = id(fn)
        if key not in self._grad_names:
            self._grad_names[key] = _backward_receivers(fn, frozenset(self.res.aliases))
        return self._grad_names[key]

    def call_function(
        self,
        fn: Func,
        arg_labels: list[Labels],
        kw_labels: dict[str, Labels],
        ctx: Ctx,
        receiver: Labels | None,
        fnrefs: dict[str, ast.AST] | None = None,
        consts: dict[str, object] | None = None,
    ) -> Labels:
        self.entered.add(id(fn))
        if len(self.stack) >= _MAX_DEPTH or any(f.fn == id(fn) for f in self.stack) or self.budget <= 0:
            return frozenset().union(*arg_labels, *kw_labels.values()) | (receiver or E)
        key = (
            id(fn),
            tuple(arg_labels),
            tuple(sorted(kw_labels.items())),
            receiver,
            ctx.no_grad,
            self.frame.hooks,
            ctx.active,
            ctx.gates,
            tuple(sorted((k, id(v)) for k, v in (fnrefs or {}).items())),
            tuple(sorted((k, repr(v)) for k, v in (consts or {}).items())),
        )
        if key in self.memo:
            self.tuple_call = (None, self.memo_elts.get(key))
            return self.memo[key]
        cls = self._class_of(fn)
        parent = self.def_frames.get(id(fn))
        frame = Frame(
            fn=id(fn),
            fid=self._new_id(),
            cls=cls,
            in_init=fn.name == "__init__",
            parent=parent if parent is not None and any(f is parent for f in self.stack) else None,
            hooks=self.frame.hooks or self._collects_statistics(fn),
            target_names=self._targets_of(fn),
            grad_names=self._backward_names(fn),
            outer_loops=len(ctx.loops),
        )
        self.frame_names[frame.fid] = (fn.name, self._call_line)
        self._fn_nodes[id(fn)] = fn
        self._bind_params(fn, frame, arg_labels, kw_labels, receiver)
        for param, target in (fnrefs or {}).items():
            frame.locals_fn[param] = target
        frame.consts.update(consts or {})
        no_grad = ctx.no_grad or any(self._grad_mode(d) for d in fn.decorator_list)
        before = len(self.events)
        self.stack.append(frame)
        try:
            self.block(fn.body, ctx.but(frames=ctx.frames + (frame.fid,), no_grad=no_grad))
        finally:
            self.stack.pop()
        if frame.optim is not None and "optim" in frame.returns:
            self.frame.optim = frame.optim  # `opt = build_opt(lora)`: the caller steps what the helper built
        elts = None if frame.returns_mixed else frame.returns_elts
        if len(self.events) == before:
            self.memo[key] = frame.returns
            self.memo_elts[key] = elts
        self.tuple_call = (None, elts)
        return frame.returns

    def _class_of(self, fn: ast.AST) -> str | None:
        for cname, cls in self.classes.items():
            if fn in cls.body:
                return cname
        return None

    def _bind_params(
        self, fn: Func, frame: Frame, arg_labels: list[Labels], kw_labels: dict[str, Labels], receiver: Labels | None
    ) -> None:
        params = [a.arg for a in fn.args.posonlyargs + fn.args.args]
        if receiver is not None and params:
            frame.env[params[0]] = receiver
            frame.self_name = params[0] if frame.cls else None
            params = params[1:]
        for name, labels in zip(params, arg_labels, strict=False):
            frame.env[name] = labels | (frozenset({"target"}) if name in frame.target_names else E)
        if fn.args.vararg is not None and len(arg_labels) > len(params):
            frame.env[fn.args.vararg.arg] = frozenset().union(*arg_labels[len(params) :])
        for name, labels in kw_labels.items():
            frame.env[name] = labels
        for name in params:
            frame.env.setdefault(name, E)
        for kw in fn.args.kwonlyargs:
            frame.env.setdefault(kw.arg, E)


def local_call(
    tracer: Tracer,
    target: ast.AST,
    node: ast.Call,
    receiver: Labels,
    arg_labels: list[Labels],
    kw_labels: dict[str, Labels],
    ctx: Ctx,
) -> Labels:
    if isinstance(target, ast.ClassDef):
        init = next((i for i in target.body if isinstance(i, ast.FunctionDef) and i.name == "__init__"), None)
        instance = frozenset().union(*arg_labels, *kw_labels.values()) - {"loss"}
        if tracer._is_optimizer("", target.name):
            event = tracer.emit(ev.OPTIM, node, instance | {"optim"}, ctx)
            tracer.frame.optim = event
            return instance | {"optim"}
        if len(tracer.stack) > 1:  # an object made in a function may be a throw-away one (verdicts.py)
            instance = _own_instance(tracer, target, node, arg_labels, kw_labels, instance, ctx)
        if init is not None:
            tracer.call_function(init, arg_labels, kw_labels, ctx, instance)
        post = next((i for i in target.body if isinstance(i, ast.FunctionDef) and i.name == "__post_init__"), None)
        if post is not None:  # a dataclass computes its derived fields here
            tracer.call_function(post, [], {}, ctx, instance)
        return instance
    if not isinstance(target, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return frozenset().union(receiver, *arg_labels, *kw_labels.values())  # nothing to inline
    is_method = tracer._class_of(target) is not None
    if is_method and not isinstance(node.func, ast.Attribute):
        receiver = E  # a bound method called through a name (`fwd = torch.compile(model.forward_logits)`)
    return tracer.call_function(
        target,
        arg_labels,
        kw_labels,
        ctx,
        receiver if is_method else None,
        _function_args(tracer, target, node, is_method),
        _constant_args(tracer, target, node, is_method),
    )


def _float_format(part: ast.FormattedValue) -> bool:
    """`{bpb:.4f}`: a rate or a loss, not a count of positions."""
    spec = part.format_spec
    text = (
        "".join(str(v.value) for v in spec.values if isinstance(v, ast.Constant))
        if isinstance(spec, ast.JoinedStr)
        else ""
    )
    return any(c in text for c in "fFeEgG%")


def _no_identity(labels: Labels) -> Labels:
    return frozenset(label for label in labels if not label.startswith("new"))


def _own_instance(
    tracer: Tracer,
    cls: ast.ClassDef,
    node: ast.Call,
    arg_labels: list[Labels],
    kw_labels: dict[str, Labels],
    instance: Labels,
    ctx: Ctx,
) -> Labels:
    """The instance gets a label of its own; it takes on the objects its constructor keeps
    (`self.model = model`), not those it only reads (`model.dim` for a LoRA's shape)."""
    kept = _kept_params(tracer, cls)
    init = next((i for i in cls.body if isinstance(i, ast.FunctionDef) and i.name == "__init__"), None)
    params = [a.arg for a in init.args.args[1:]] if init is not None else []
    foreign = set()
    for name, labels in list(zip(params, arg_labels, strict=False)) + list(kw_labels.items()):
        if name not in kept:
            foreign |= {label for label in labels if label.startswith("new")}
    for labels in arg_labels[len(params) :] if init is not None else ():
        foreign -= labels  # *args: kept, as far as anyone can tell
    label = f"new{node.lineno}"
    tracer.emit(ev.NEW, node, E, ctx, label=label)
    return (instance - foreign) | {label}


def _kept_params(tracer: Tracer, cls: ast.ClassDef) -> frozenset[str]:
    """Constructor parameters the instance holds as objects: handed to the base class, put in a
    module container, or stored and then called (`self.model = model` ... `self.model(x)`). A
    number stored for later arithmetic (`self.rank = rank`) is no part of the object."""
    key = ("kept", id(cls))
    if key not in tracer.memo:
        tracer.memo[key] = _held(cls)
    return tracer.memo[key]


_CONTAINERS = {"ModuleList", "ModuleDict", "Sequential", "ParameterList", "ParameterDict", "__init__"}


def _held(cls: ast.ClassDef) -> frozenset[str]:
    init = next((i for i in cls.body if isinstance(i, ast.FunctionDef) and i.name == "__init__"), None)
    if init is None:
        return frozenset()
    params = {a.arg for a in init.args.args[1:] + init.args.kwonlyargs}
    kept: set[str] = set()
    stored: dict[str, set[str]] = {}
    for node in ast.walk(init):
        if isinstance(node, ast.Call) and Tracer._last(node.func) in _CONTAINERS:
            kept |= {n.id for a in node.args for n in ast.walk(a) if isinstance(n, ast.Name) and n.id in params}
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name) and node.value.id in params:
            for t in node.targets:
                if isinstance(t, ast.Attribute):
                    stored.setdefault(t.attr, set()).add(node.value.id)
    used = {_self_attr(n.func) for n in ast.walk(cls) if isinstance(n, ast.Call)}
    used |= {_self_attr(a) for n in ast.walk(cls) if isinstance(n, ast.Call) for a in n.args}
    for attr, names in stored.items():
        if attr in used:
            kept |= names
    return frozenset(kept)


def _self_attr(node: ast.expr) -> str | None:
    """`self.model`, `self.model.forward`, `self.model.blocks[0]`: the attribute of self at the root."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        inner = node.value
        if isinstance(node, ast.Attribute) and isinstance(inner, ast.Name) and inner.id == "self":
            return node.attr
        node = inner
    return None


def _constant_args(tracer: Tracer, target: Func, node: ast.Call, is_method: bool) -> dict[str, object]:
    """Parameters given a constant (a label string, a flag): the callee folds with them."""
    params = [a.arg for a in target.args.posonlyargs + target.args.args]
    if is_method and params:
        params = params[1:]
    out: dict[str, object] = {}
    pairs = list(zip(params, node.args, strict=False)) + [(k.arg, k.value) for k in node.keywords if k.arg]
    for name, arg in pairs:
        if isinstance(arg, ast.Starred):
            break
        value = tracer.res.fold(arg, tracer.frame.consts)
        if value is not UNKNOWN and isinstance(value, (str, int, float, bool, type(None))):
            out[name] = value
    return out


def _function_args(tracer: Tracer, target: Func, node: ast.Call, is_method: bool) -> dict[str, ast.AST]:
    """Parameters that receive a local function (`timed_eval("x", eval_val, ...)`): calls through them are followed."""
    params = [a.arg for a in target.args.posonlyargs + target.args.args]
    if is_method and params:
        params = params[1:]
    refs: dict[str, ast.AST] = {}
    for name, arg in zip(params, node.args, strict=False):
        fn = tracer._function_value(arg)
        if fn is not None:
            refs[name] = fn
    for kw in node.keywords:
        fn = tracer._function_value(kw.value) if kw.arg else None
        if kw.arg and fn is not None:
            refs[kw.arg] = fn
    return refs


def _pairwise(node: ast.Assign) -> bool:
    """`x, y = a, b`: bind element-wise so inputs and targets keep apart."""
    return (
        len(node.targets) == 1
        and isinstance(node.targets[0], (ast.Tuple, ast.List))
        and isinstance(node.value, (ast.Tuple, ast.List))
        and len(node.targets[0].elts) == len(node.value.elts)
        and not any(isinstance(e, ast.Starred) for e in node.targets[0].elts)
    )


def _target_names(fn: ast.AST) -> frozenset[str]:
    """Names passed as the target of a loss in this function: the tokens being predicted."""
    names = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.Call) and Tracer._last(node.func) in _LOSS_FUNCS:
            target = (
                node.args[1]
                if len(node.args) >= 2
                else next((k.value for k in node.keywords if k.arg == "target"), None)
            )
            if isinstance(target, ast.Name):
                names.add(target.id)
    return frozenset(names)


_SPLIT_ENV = re.compile(r"^(?:[A-Z0-9]+_)*(VAL|VALIDATION|TRAIN)_(?:DATA|FILES|PATH|DIR|SHARDS|GLOB|PATTERN|TOKENS)$")


def _ordered_sides(test: ast.expr) -> list[ast.expr] | None:
    """The two operands of `a < b` (or <=, >, >=) when both are plain values (a name, an element, an
    attribute, a negation), which can be two scores of one token; None for any other test."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], _ORDERING)):
        return None
    sides = [test.left, test.comparators[0]]
    plain = all(isinstance(side, (ast.Name, ast.Subscript, ast.Attribute, ast.UnaryOp)) for side in sides)
    return sides if plain else None


def _is_summed_score(labels: Labels) -> bool:
    """A running total of validation losses (or a figure computed from one), never a per-token value."""
    return {"val", "loss", "sum"} <= labels and any(label.startswith("score#") for label in labels)


def _literal_labels(text: str) -> Labels:
    out = set()
    if "fineweb_val" in text or "_val_0" in text:
        out.add("val")
    if "fineweb_train" in text or "_train_0" in text:
        out.add("train")
    split = _SPLIT_ENV.match(text)
    if split:  # `os.environ["PGOLF_VAL_DATA"]`: the variable that names a split's files
        out.add("train" if split.group(1) == "TRAIN" else "val")
    if (
        text.startswith(("http://", "https://", "ftp://", "hf://"))
        or " curl " in f" {text} "
        or " wget " in f" {text} "
    ):
        out.add("url")
    return frozenset(out)


def _is_shifted(node: ast.expr) -> bool:
    """`[1:]`, `[i + 1: j + 1]`, `[:, 1:]`: the stream shifted by one, i.e. the targets."""
    parts = node.elts if isinstance(node, ast.Tuple) else [node]
    for part in parts:
        if isinstance(part, ast.Slice) and part.lower is not None:
            low = part.lower
            if isinstance(low, ast.Constant) and low.value == 1:
                return True
            if (
                isinstance(low, ast.BinOp)
                and isinstance(low.op, ast.Add)
                and isinstance(low.right, ast.Constant)
                and low.right.value == 1
            ):
                return True
    return False


def _is_transpose(node: ast.expr) -> bool:
    if isinstance(node, ast.Attribute) and node.attr in ("T", "mT"):
        return True
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("t", "transpose")


def _gram_or_patch(fn: ast.AST) -> bool:
    """`H.addmm_(x.T, x)`, `x.T @ x`, `matmul(x.t(), x)`, or `module.forward = hooked`: statistics for calibration."""
    for node in ast.walk(fn):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult) and _is_transpose(node.left):
            return True
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("addmm_", "addmm", "matmul", "mm")
            and node.args
            and any(_is_transpose(a) for a in node.args[:2])
        ):
            return True
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Attribute) and t.attr == "forward" for t in node.targets
        ):
            return True
    return False


def _class_body(stmts: list[ast.stmt]) -> Iterable[ast.stmt]:
    """A class body's statements, those under `if`/`try`/`with` included (config classes branch on knobs)."""
    for stmt in stmts:
        if isinstance(stmt, ast.If):
            yield from _class_body(stmt.body)
            yield from _class_body(stmt.orelse)
        elif isinstance(stmt, (ast.Try, ast.With)):
            yield from _class_body(stmt.body)
            for handler in getattr(stmt, "handlers", []):
                yield from _class_body(handler.body)
        else:
            yield stmt


def _prime_tables(module: ast.Module) -> set[str]:
    """Names bound to two or more large integer literals: the multipliers of a hash."""
    names: set[str] = set()
    for node in ast.walk(module):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, (ast.List, ast.Tuple, ast.Call)):
            bigs = sum(
                1
                for c in ast.walk(node.value)
                if isinstance(c, ast.Constant)
                and isinstance(c.value, int)
                and not isinstance(c.value, bool)
                and abs(c.value) > _BIG_PRIME
            )
            if bigs >= 2:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if isinstance(t, ast.Name):
                        names.add(t.id)
                    elif isinstance(t, ast.Attribute):
                        names.add(t.attr)
    return names


def _root_name(node: ast.expr) -> ast.expr | None:
    """`out.ctypes.data_as(P)`, `ctypes.byref(out)`, `np.ascontiguousarray(out)`: the array passed."""
    while True:
        if isinstance(node, ast.Name):
            return node
        if isinstance(node, ast.Attribute):
            inner = node.value
            if isinstance(inner, ast.Name) and inner.id in ("self",):
                return node
            node = inner
        elif isinstance(node, ast.Call):
            if isinstance(node.func, ast.Attribute) and not isinstance(node.func.value, ast.Name):
                node = node.func.value
            elif isinstance(node.func, ast.Attribute) and node.func.attr not in (
                "byref",
                "cast",
                "pointer",
                "ascontiguousarray",
                "addressof",
            ):
                node = node.func.value
            elif node.args:
                node = node.args[0]
            else:
                return None
        elif isinstance(node, ast.Subscript):
            node = node.value
        else:
            return None


def _is_data(labels: Labels) -> bool:
    return bool(labels & {"val", "train", "target", "loss"}) or any(label.startswith("lv") for label in labels)


def _is_table_write(key: Labels, target: ast.Subscript, node: ast.AST) -> bool:
    """A write keyed by token values (a hashed context, a target token), or a count bumped at a
    key: a cache or table. A write at positions or lengths (`x[b, :wl] = toks[:-1]`) fills a batch."""
    if any(isinstance(n, ast.Slice) for n in ast.walk(target.slice)):
        return False
    if key & {"hash", "target"}:
        return True
    return isinstance(node, ast.AugAssign) and isinstance(node.value, ast.Constant)


def _never_none(value: ast.expr, tracer: Tracer) -> bool:
    """A literal container, a comprehension, arithmetic, or a library constructor: not None."""
    if isinstance(
        value,
        (
            ast.Dict,
            ast.List,
            ast.Set,
            ast.Tuple,
            ast.DictComp,
            ast.ListComp,
            ast.SetComp,
            ast.GeneratorExp,
            ast.JoinedStr,
            ast.BinOp,
            ast.Lambda,
        ),
    ):
        return True
    if isinstance(value, ast.Call):
        root = value.func
        while isinstance(root, ast.Attribute):
            root = root.value
        return isinstance(root, ast.Name) and root.id in tracer.res.aliases
    return False


def _restricts(node: ast.expr) -> bool:
    """`y[mask]`, `y[:, :c]`, `y[i, a:b]`: a subset of the positions, not the whole target tensor."""
    parts = node.elts if isinstance(node, ast.Tuple) else [node]
    for part in parts:
        if isinstance(part, ast.Slice):
            if part.lower is not None and not _small_const(part.lower):
                return True
            if part.upper is not None and not _drops_a_few(part.upper):
                return True
        elif not isinstance(part, ast.Constant):
            return True
    return False


def _small_const(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, int) and abs(node.value) <= 2


def _drops_a_few(node: ast.expr) -> bool:
    """`:-1`, `:n - 1`: all but the last position or two (the window minus its unpredictable end)."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return _small_const(node.operand)
    return isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub) and _small_const(node.right)


def _is_one(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value == 1 and not isinstance(node.value, bool)


def _big_int(node: ast.BinOp) -> bool:
    return any(
        isinstance(side, ast.Constant)
        and isinstance(side.value, int)
        and not isinstance(side.value, bool)
        and abs(side.value) > _BIG_PRIME
        for side in (node.left, node.right)
    )


def _kw_true(node: ast.Call, name: str) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is True for k in node.keywords)


def _log_sum_exp_max(node: ast.BinOp) -> set[int]:
    """`max(a, b) + log1p(exp(-|a - b|))` is log(e^a + e^b), a mixture of both, not the better of two."""
    for part, other in ((node.left, node.right), (node.right, node.left)):
        if (
            isinstance(part, ast.Call)
            and Tracer._last(part.func) == "max"
            and any(
                isinstance(n, ast.Call)
                and Tracer._last(n.func) in ("log1p", "log")
                and any(isinstance(m, ast.Call) and Tracer._last(m.func) == "exp" for m in ast.walk(n))
                for n in ast.walk(other)
            )
        ):
            return {id(part)}
    return set()


def _backward_receivers(fn: ast.AST, modules: frozenset[str] = frozenset({"torch", "F"})) -> frozenset[str]:
    """Names a function backpropagates (`loss.backward()`, `loss.mean().backward()`,
    `scaler.scale(loss).backward()`, `autograd.grad(loss, ...)`): the loss variables, not every name
    in an expression that is backpropagated without being stored."""
    names: set[str] = set()
    for node in ast.walk(fn):
        if not isinstance(node, ast.Call):
            continue
        last = Tracer._last(node.func)
        if last == "backward" and isinstance(node.func, ast.Attribute):
            root = node.func.value
        elif last == "grad" and node.args:
            root = node.args[0]
        else:
            continue
        names.update(_loss_names(root, modules))
    return frozenset(names)


def _loss_names(node: ast.expr, modules: frozenset[str]) -> set[str]:
    """`modules`: the names a script imports modules as (`F`, or whatever a renamer made of it):
    `F.cross_entropy(...).backward()` backpropagates no variable."""
    if isinstance(node, ast.Name):
        return {node.id}
    if isinstance(node, (ast.Attribute, ast.Subscript)):
        return _loss_names(node.value, modules)
    if isinstance(node, ast.BinOp):
        return _loss_names(node.left, modules) | _loss_names(node.right, modules)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr == "scale" and node.args:  # AMP: scaler.scale(loss)
            return _loss_names(node.args[0], modules)
        root = node.func.value  # loss.mean(), loss.float().sum()
        return _loss_names(root, modules) if not isinstance(root, ast.Name) or root.id not in modules else set()
    return set()


def _referenced_names(module: ast.Module) -> set[str]:
    """Names read anywhere (a function passed as a value, a thread target, a registry entry)."""
    return {n.id for n in ast.walk(module) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)} | {
        n.attr for n in ast.walk(module) if isinstance(n, ast.Attribute)
    }


def _source_of(node: ast.expr) -> str:
    try:
        text = ast.unparse(node)
    except Exception:  # noqa: BLE001 - a report detail, never a reason to stop
        return "<condition>"
    return text if len(text) <= 100 else text[:97] + "..."


_PLACEHOLDER = re.compile(r"%[-+ #0-9.]*[a-zA-Z%]|\{[^{}]*\}")


def _log_fragments(node: ast.expr, fold: Fold | None = None, choices: bool = False) -> tuple[str, ...]:
    """The literal text a print/log call writes: what a log shows when this line ran.

    Runs of literal text between format fields, at least 6 characters with 4 letters
    (`slot:starting lr=`, `ttt_legal: chunks=`); whether a run is specific to one
    path is decided against the whole script later (logsignals.py). With `choices`, the text it
    may write instead: either side of `log(f"...matched={n}" if n else "no matches")`.
    """
    if not isinstance(node, ast.Call):
        return ()
    out: list[str] = []
    args = [*node.args, *(k.value for k in node.keywords)]
    if choices:
        args = [side for arg in args if isinstance(arg, ast.IfExp) for side in (arg.body, arg.orelse)]
    for text in (t for arg in args for t in _literal_texts(arg, fold)):
        for piece in _PLACEHOLDER.split(text):
            piece = " ".join(piece.split())
            if len(piece) >= 6 and sum(c.isalpha() for c in piece) >= 4:
                out.append(piece)
    return tuple(dict.fromkeys(out))


def _literal_texts(node: ast.expr, fold: Fold | None = None) -> list[str]:
    """The text a format writes for sure: literals, and fields whose value is known (`f"{label} val_loss:..."`
    with label passed in as "quantized_ttt_phased"; `stride:{args.eval_stride}` where the run's stride is 64,
    which writes the same text as another branch's literal `stride:64`)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        runs, current = [], ""
        for part in node.values:
            if isinstance(part, ast.Constant) and isinstance(part.value, str):
                current += part.value
                continue
            known = (
                fold is not None
                and isinstance(part, ast.FormattedValue)
                and part.format_spec is None
                and part.conversion in (-1, 115)
            )
            value = fold(part.value) if known and fold is not None and isinstance(part, ast.FormattedValue) else None
            if isinstance(value, (str, int, float)):
                current += str(value)  # what an f-string field without a format writes
            else:
                runs.append(current)
                current = ""
        return runs + [current]
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mod, ast.Add)):
        return _literal_texts(node.left, fold) + _literal_texts(node.right, fold)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return _literal_texts(node.func.value, fold)
    return []


import builtins as _builtins  # noqa: E402

__builtins_names__ = frozenset(dir(_builtins))
