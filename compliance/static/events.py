"""What the tracer records: ordered operations with their data labels and context.

Labels name where data came from, never what it is called:
  val / train   tokens read from a validation / training shard (file-glob literals)
  target        the shifted token stream a loss is computed against
  loss          a cross-entropy / log-prob value
  hash          a hashed key (xor, large-prime multiply, modulo)
  fresh         a tensor created with requires_grad outside the model (a delta, a bias)
  copy          a deep copy of an object (throw-away state)
  optim         an optimizer object
  modparams     what a module's .parameters() gives (an optimizer over it steps a model or an adapter)
  new<L>        an instance of a script class made inside a function, at line L (an adapter, a model)
  url           a network address literal
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Labels = frozenset[str]  # the labels above, on one value

SCORE = "score"  # loss sum under no_grad/inference_mode on validation data
UPDATE = "update"  # backward / autograd.grad on a loss
OPTIM = "optim"  # optimizer construction
TABLE_WRITE = "table"  # write into a table keyed by validation data
NGRAM_KEY = "ngram"  # table addressed by a hash that mixes in the target token
READ = "read"  # file read / glob
NETWORK = "network"
CALIB = "calib"  # forward pass while calibration hooks are registered
SAVE = "save"  # serialization into the artifact
RESTORE = "restore"  # load_state_dict: state thrown away
BEST_OF = "best_of"  # min/max over two scores
TOKENIZER = "tokenizer"  # tokenizer training
NATIVE_GATE = "native_gate"  # a C kernel's output gated by the token it scores reaches Python here
LOG = "log"  # a print/log call: its literal text tells which path ran (logsignals.py)
NEW = "new"  # an instance of a script class made inside a function (detail: its label)


@dataclass
class Event:
    kind: str
    line: int
    labels: Labels
    seq: int
    loops: tuple[int, ...]  # loop instances enclosing the operation, outermost first
    frames: tuple[int, ...]  # call instances enclosing it, outermost first
    active: bool  # False when a branch is switched off by the configuration
    no_grad: bool = False
    gates: tuple[int, ...] = ()  # unresolved branches enclosing it (Tracer.gates), outermost first
    arms: tuple[tuple[int, int], ...] = ()  # the sides of configuration if/else forks it lies on
    activity: str = "unknown"  # on | off | unknown, once gates are judged (activity.py)
    file: str | None = None  # the file the line is in (a helper module, or the entry script)
    loopvar_guards: frozenset[int] = frozenset()  # loops whose variable decides a branch around it
    optim: Event | None = None  # the optimizer an update feeds
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def on(self) -> bool:
        return self.activity == "on"

    def excludes(self, other: Event) -> bool:
        """On opposite sides of one configuration if/else: no run does both, so neither comes after the other."""
        mine = dict(self.arms)
        return any(fork in mine and mine[fork] != side for fork, side in other.arms)

    def shares_loop(self, other: Event) -> bool:
        return bool(set(self.loops) & set(other.loops))
