"""Run a record script as `__main__`, as `python SCRIPT args...` would, under this interpreter.

    python pgolf_shim_launch.py SCRIPT [args...]      (or under torchrun)

The script gets `__name__ == "__main__"`, `__file__` = its absolute path, sys.argv = [SCRIPT,
args...] and sys.path[0] = its directory. Two things differ from a plain run, both only where the
plain run would fail with a SyntaxError:
- a script written for Python 3.12 (PEP 701 f-strings: nested same quotes, comments or
  backslashes inside replacement fields) is rewritten by the interpreter named in PGOLF_PY312,
  through its own `ast`, into plain `'...'.format(...)` calls this interpreter parses; line
  numbers are kept, so tracebacks point at the original lines;
- the records' self-extracting form `exec(lzma.decompress(base64.b85decode(...)))` runs as is;
  when its payload needs 3.12, the `exec` call gets the rewritten payload.
A script that still cannot be compiled ends the run with one line on stderr and exit status 3.

After the script's code has ended, the launcher does what the interpreter's exit does up to its
atexit handlers (wait for non-daemon threads, run the handlers, flush), then leaves with the
status Python would have given. What it skips is the interpreter's own teardown: there, a gloo
process group's C++ threads can abort the process ("terminate called without an active
exception", SIGABRT) after a run that has finished and said everything, even when the script
destroyed the group; the run would read as failed for a reason that is not the script's.
"""

from __future__ import annotations

import builtins
import io
import os
import subprocess
import sys
import tokenize
import types

EXIT_CANNOT_COMPILE = 3
_REWRITE_TIMEOUT_S = 120

# Run by the 3.12 interpreter: reads source on stdin, writes the rewritten source on stdout.
# Every f-string (outermost JoinedStr) becomes ('<literal parts, {:{}} fields>'.format(value,
# spec, ...)); str.format applies the same conversion and format spec as the f-string did, and
# a literal's .format cannot be shadowed by the script's own names.
_REWRITER = r"""
import ast, io, sys, tokenize

if sys.version_info < (3, 12):
    sys.stderr.write("PGOLF_PY312 is Python %d.%d, not 3.12+\n" % sys.version_info[:2])
    sys.exit(4)

CONVERSIONS = {-1: "", 115: "!s", 114: "!r", 97: "!a"}


def fstring_to_format(node):
    pattern, args = [], []
    for part in node.values:
        if isinstance(part, ast.Constant):
            pattern.append(part.value.replace("{", "{{").replace("}", "}}"))
        else:
            pattern.append("{" + CONVERSIONS[part.conversion] + ":{}}")
            args.append(expression(part.value))
            args.append(fstring_to_format(part.format_spec) if part.format_spec else "''")
    return "(" + repr("".join(pattern)) + ".format(" + ", ".join(args) + "))"


class Inner(ast.NodeTransformer):
    def visit_JoinedStr(self, node):
        return ast.parse(fstring_to_format(node), mode="eval").body


def expression(node):
    return "(" + ast.unparse(Inner().visit(node)) + ")"


def outermost_fstrings(tree):
    found, stack = [], [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.JoinedStr):
            found.append(node)
            continue
        stack.extend(ast.iter_child_nodes(node))
    return found


def rewrite(text):
    tree = ast.parse(text)
    lines = [line.encode("utf-8") for line in text.splitlines(keepends=True)]
    nodes = sorted(outermost_fstrings(tree), key=lambda n: (n.lineno, n.col_offset), reverse=True)
    for node in nodes:
        first, last = node.lineno - 1, node.end_lineno - 1
        code = fstring_to_format(node)
        replacement = (code[:-1] + "\n" * (last - first) + ")").encode("utf-8")
        head, tail = lines[first][:node.col_offset], lines[last][node.end_col_offset:]
        lines[first:last + 1] = [head + replacement + tail]
    return b"".join(lines).decode("utf-8")


raw = sys.stdin.buffer.read()
encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
try:
    out = rewrite(raw.decode(encoding))
except SyntaxError as err:
    sys.stderr.write("SyntaxError: %s (line %s)\n" % (err.msg, err.lineno))
    sys.exit(2)
sys.stdout.buffer.write(out.encode("utf-8"))
"""


class CannotCompile(Exception):
    """The script cannot be compiled here; the message is the one line to print."""


def main(argv: list) -> int:
    if not argv:
        sys.stderr.write("usage: pgolf_shim_launch.py SCRIPT [args...]\n")
        return 2
    script = argv[0]
    path = os.path.abspath(script)
    try:
        with open(path, "rb") as handle:
            source = handle.read()
    except OSError as exc:
        sys.stderr.write(f"pgolf-shim: {script}: cannot read: {exc.strerror}\n")
        return 2
    try:
        code = compile_script(source, path, script)
    except CannotCompile as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_CANNOT_COMPILE
    module = _fresh_main(path)
    if b"exec" in source:
        _rewrite_failing_exec_payloads(module.__dict__, script)
    _run_as_main(code, module, script, path, argv[1:])
    return 0


def compile_script(source: bytes, filename: str, label: str) -> types.CodeType:
    """Compile here; on a SyntaxError, through the PGOLF_PY312 rewrite. Raises CannotCompile."""
    try:
        return compile(source, filename, "exec", dont_inherit=True)
    except SyntaxError as err:
        original = err
    except ValueError as err:  # null bytes
        raise CannotCompile(f"pgolf-shim: {label}: {err}") from None
    rewritten = rewrite_for_this_python(source, label, original)
    try:
        return compile(rewritten, filename, "exec", dont_inherit=True)
    except SyntaxError:
        raise CannotCompile(_needs_312(label)) from None


def rewrite_for_this_python(source: bytes | str, label: str, error: SyntaxError) -> str:
    """The source rewritten by the PGOLF_PY312 interpreter; CannotCompile when that is not possible."""
    python = os.environ.get("PGOLF_PY312", "")
    if not python:
        raise CannotCompile(f"pgolf-shim: {label}: {_describe(error)} (set PGOLF_PY312 to try a 3.12 rewrite)")
    data = source.encode("utf-8") if isinstance(source, str) else source
    try:
        done = subprocess.run(
            [python, "-I", "-c", _REWRITER], input=data, capture_output=True, timeout=_REWRITE_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        raise CannotCompile(_needs_312(label)) from None
    if done.returncode == 2:  # 3.12 cannot parse it either: a plain syntax error
        raise CannotCompile(f"pgolf-shim: {label}: {_describe(error)}")
    if done.returncode != 0:
        raise CannotCompile(_needs_312(label))
    return done.stdout.decode("utf-8")


def _describe(error: SyntaxError) -> str:
    return f"SyntaxError: {error.msg} (line {error.lineno})"


def _needs_312(label: str) -> str:
    return f"pgolf-shim: {label}: needs Python 3.12 grammar and could not be rewritten"


def _fresh_main(path: str) -> types.ModuleType:
    module = types.ModuleType("__main__")
    module.__dict__.update({"__file__": path, "__cached__": None, "__builtins__": builtins, "__spec__": None})
    return module


def _run_as_main(code: types.CodeType, module: types.ModuleType, script: str, path: str, args: list) -> None:
    sys.modules["__main__"] = module
    sys.argv = [script, *args]
    sys.path[0] = os.path.dirname(os.path.realpath(path))
    exec(code, module.__dict__)


def _rewrite_failing_exec_payloads(script_globals: dict, label: str) -> None:
    """Let the script's own `exec(source)` of a payload that needs 3.12 run the rewrite.

    Only exec calls made from the script's module (the self-extracting wrapper and the code it
    unpacks, which shares its globals) are looked at, and only a source that does not compile
    here is replaced; exec calls from anywhere else (torch codegen, libraries) go to the real
    exec untouched."""
    real_exec = builtins.exec

    def exec_with_rewrite(source, globals=None, locals=None, *args, **kwargs):
        caller = sys._getframe(1)
        if globals is None:
            globals = caller.f_globals
            locals = caller.f_locals if locals is None else locals
        if caller.f_globals is script_globals and isinstance(source, (str, bytes)):
            source = _payload_code(source, label) or source
        return real_exec(source, globals, locals, *args, **kwargs)

    builtins.exec = exec_with_rewrite


def _payload_code(source: str | bytes, label: str) -> types.CodeType | None:
    """None when the source compiles here; else its rewrite (or exit 3 with one line)."""
    try:
        compile(source, "<string>", "exec", dont_inherit=True)
        return None
    except SyntaxError as err:
        error = err
    except ValueError:
        return None
    try:
        text = rewrite_for_this_python(_decode(source), f"{label} (exec payload)", error)
        return compile(text, "<string>", "exec", dont_inherit=True)
    except SyntaxError:
        message = _needs_312(f"{label} (exec payload)")
    except CannotCompile as exc:
        message = str(exc)
    sys.stderr.write(message + "\n")
    raise SystemExit(EXIT_CANNOT_COMPILE)


def _decode(source: str | bytes) -> str:
    if isinstance(source, str):
        return source
    encoding, _ = tokenize.detect_encoding(io.BytesIO(source).readline)
    return source.decode(encoding)


def exit_status(run, *args) -> int:
    """What `sys.exit(run(*args))` would give, an uncaught exception reported as Python does.
    KeyboardInterrupt is left to the interpreter (it exits by the signal)."""
    try:
        return _status_of_exit_code(run(*args))
    except SystemExit as stop:
        return _status_of_exit_code(stop.code)
    except Exception:  # noqa: BLE001 - every uncaught exception is the script's exit status 1
        sys.excepthook(*sys.exc_info())
        return 1


def _status_of_exit_code(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    sys.stderr.write(f"{code}\n")
    return 1


def exit_without_teardown(status: int) -> None:
    """Python's exit up to its atexit handlers, then os._exit (see the module's docstring)."""
    import atexit
    import threading

    shutdown = getattr(threading, "_shutdown", None)  # joins non-daemon threads, as exit does
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    os._exit(status)


if __name__ == "__main__":
    exit_without_teardown(exit_status(main, sys.argv[1:]))
