"""Dynamic taint: which canary optimizer steps a tensor's value depends on.

Every optimizer step that follows a backward on canary targets gets a bit; the parameters it
changed carry that bit, and every op the TorchFunctionMode sees passes the union of its inputs'
bits to its outputs (in-place ops to their target; an overwrite such as zero_ or copy_ of a
whole storage replaces the target's bits). Bits belong to storages, not tensor objects, so a
write through `.data` or another view reaches the tensor it views. A storage freed and reused
may keep stale bits: more taint, which can only ever flag what time order already would. The logits a loss is computed from then say which adaptation steps reached
that score: an adapter reset for the next document, or a base model that never read it, leaves
none. Values that leave torch (torch.save, .numpy(), pickling) make the escaped bits stick to
every tensor later built from outside data (torch.load, from_numpy, torch.tensor): a flow the
mode cannot follow is assumed to reach. Lost flows can only hide an update, never invent one:
a bit only ever marks positions trained before it existed.
"""

from __future__ import annotations

IN_PLACE_DUNDERS = {"__setitem__", "__iadd__", "__isub__", "__imul__", "__itruediv__", "__ior__", "__iand__"}
OVERWRITES = {
    "zero_",
    "fill_",
    "copy_",
    "normal_",
    "uniform_",
    "bernoulli_",
    "exponential_",
    "random_",
    "geometric_",
    "cauchy_",
    "log_normal_",
    "set_",
    "fill_diagonal_",
}
ESCAPES = {"numpy", "__array__", "__reduce_ex__", "tobytes", "untyped_storage", "data_ptr"}
FROM_OUTSIDE = {"from_numpy", "tensor", "as_tensor", "frombuffer", "asarray"}


class Taint:
    def __init__(self) -> None:
        self.masks: dict[int, int] = {}  # storage address -> bits
        self.escaped = 0
        self.steps = 0

    @property
    def active(self) -> bool:
        return self.steps > 0

    def of(self, value) -> int:
        key = _storage(value)
        return self.masks.get(key, 0) if key else 0

    def mark(self, tensor, mask: int) -> None:
        key = _storage(tensor)
        if not key:
            return
        if mask:
            self.masks[key] = mask
        else:
            self.masks.pop(key, None)

    def new_step(self, params) -> int:
        """A canary step changed `params`: a new bit, carried by each of them from now on."""
        bit = self.steps
        self.steps += 1
        for p in params:
            self.mark(p, self.of(p) | (1 << bit))
        return bit

    def propagate(self, func, args, kwargs, out) -> None:
        import torch

        name = getattr(func, "__name__", "")
        values = list(_flat(args, kwargs))
        mask = 0
        for v in values:
            if isinstance(v, torch.Tensor):
                mask |= self.of(v)
        if name in ESCAPES:
            self.escaped |= mask
            return
        if name in FROM_OUTSIDE and not any(isinstance(v, torch.Tensor) for v in values):
            mask = self.escaped
        target = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if target is not None and _in_place(name):
            others = 0
            for v in values[1:]:
                if isinstance(v, torch.Tensor):
                    others |= self.of(v)
            whole = name in OVERWRITES and _covers_storage(target)
            self.mark(target, others if whole else self.of(target) | others)
        for t in _tensors(out):
            if t is not target:
                self.mark(t, mask)

    def saved(self, obj) -> None:
        """torch.save: what it writes may come back through torch.load, in any process."""
        for t in _walk(obj):
            self.escaped |= self.of(t)

    def loaded(self, obj) -> None:
        for t in _walk(obj):
            self.mark(t, self.of(t) | self.escaped)


def _storage(tensor) -> int:
    try:
        return tensor.untyped_storage().data_ptr()
    except Exception:  # noqa: BLE001 - sparse, meta or otherwise storage-less tensors carry no bits
        return 0


def _covers_storage(tensor) -> bool:
    try:
        return tensor.numel() * tensor.element_size() >= tensor.untyped_storage().nbytes()
    except Exception:  # noqa: BLE001
        return False


def _in_place(name: str) -> bool:
    return (name.endswith("_") and not name.endswith("__")) or name in IN_PLACE_DUNDERS


def _flat(args, kwargs):
    for value in (*args, *kwargs.values()):
        if isinstance(value, (list, tuple)):
            yield from value
        else:
            yield value


def _tensors(out):
    import torch

    if isinstance(out, torch.Tensor):
        yield out
    elif isinstance(out, (list, tuple)):
        for item in out:
            if isinstance(item, torch.Tensor):
                yield item


def _walk(obj, depth: int = 0):
    """Tensors inside what torch.save writes: state dicts, modules, nested containers."""
    import torch

    if depth > 6:
        return
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, torch.nn.Module):
        yield from obj.parameters()
        yield from obj.buffers()
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _walk(value, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _walk(value, depth + 1)
