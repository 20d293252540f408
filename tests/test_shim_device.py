"""The CPU device shim (compliance/dynamic/shim) runs CUDA-only scripts unmodified.

Everything that installs the shim runs in a child process, as the harness does: the shim patches
torch process-wide and must never touch the test process. Children use one thread each.
"""

from __future__ import annotations

import base64
import glob
import json
import lzma
import math
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the device shim drives torch scripts")

REPO = Path(__file__).resolve().parents[1]
SHIM = REPO / "compliance" / "dynamic" / "shim"
FIXTURES = REPO / "tests" / "fixtures" / "dynamic"
CUDA_SCRIPT = FIXTURES / "cuda_style_script.py"
PY312_SCRIPT = FIXTURES / "py312_fstring_script.py"
LAUNCHER = SHIM / "pgolf_shim_launch.py"
FINAL_LINE = re.compile(r"^final_check val_loss:(\d+\.\d+)$")


def _child_env(pythonpath: list | None = None, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGOLF_")}
    env.update(
        PYTHONPATH=os.pathsep.join(str(p) for p in (pythonpath or [SHIM])),
        PGOLF_SHIM_DEVICE="cpu",
        OMP_NUM_THREADS="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(extra)
    return env


def _run(args: list, env: dict, timeout: int = 180, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(a) for a in args], env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd or REPO, check=False
    )


def _final_loss(done: subprocess.CompletedProcess) -> float:
    assert done.returncode == 0, done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    match = FINAL_LINE.match(last)
    assert match, f"last line was {last!r}"
    return float(match.group(1))


def _shim_lines(stderr: str) -> list:
    return [line for line in stderr.splitlines() if line.startswith("pgolf-shim: device=cpu (")]


# ---------------------------------------------------------------- the CUDA-style fixture


def test_cuda_style_script_runs_on_cpu():
    done = _run([sys.executable, CUDA_SCRIPT], _child_env())
    loss = _final_loss(done)
    assert abs(loss - math.log(64)) < 0.5  # random tokens: near the uniform loss
    assert "NVIDIA H100" in done.stdout and "sm_90 sms:132" in done.stdout
    lines = _shim_lines(done.stderr)
    assert len(lines) == 1 and "FAILED" not in lines[0], done.stderr[-2000:]


def test_cuda_style_script_runs_under_torchrun_with_gloo():
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", CUDA_SCRIPT]
    done = _run(args, _child_env())
    loss = _final_loss(done)
    assert abs(loss - math.log(64)) < 0.5
    assert done.stdout.count("final_check") == 1  # rank 0 only
    lines = _shim_lines(done.stderr)
    assert len(lines) == 3 and not any("FAILED" in line for line in lines)  # launcher + 2 workers


def test_a_process_without_torch_does_not_import_it():
    probe = (
        "import json, os, shutil, sys; print(json.dumps({'heavy': sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('torch', 'numpy', 'triton')), 'shim': 'pgolf_shim_device' in sys.modules, "
        "'smi': shutil.which('nvidia-smi'), 'bin': os.environ.get('PGOLF_SHIM_BIN')}))"
    )
    done = _run([sys.executable, "-c", probe], _child_env())
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["shim"] and seen["heavy"] == []
    assert seen["smi"] == os.path.join(seen["bin"], "nvidia-smi")
    assert done.stderr == ""  # silent until torch is imported


def test_install_works_without_sitecustomize():
    # The device shim arms its patches through pgolf_shim_hooks itself; sitecustomize is one caller.
    probe = (
        "import sys; sys.modules.pop('sitecustomize', None); import pgolf_shim_device; "
        "pgolf_shim_device.install(); import torch; "
        "print(torch.cuda.is_available(), torch.zeros(1, device='cuda').device)"
    )
    env = _child_env()
    del env["PGOLF_SHIM_DEVICE"]
    done = _run([sys.executable, "-c", probe], env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "True cpu" and len(_shim_lines(done.stderr)) == 1


def test_one_post_import_hook_serves_sitecustomize_the_device_shim_and_the_tracer(tmp_path: Path):
    probe = (
        "import sys, sitecustomize, pgolf_shim_hooks; import torch; "
        "finders = [f for f in sys.meta_path if type(f).__name__ == '_PostImport']; "
        "print(len(finders), sitecustomize.when_imported is pgolf_shim_hooks.when_imported, "
        "'pgolf_shim_tracer' in sys.modules, torch.cuda.is_available())"
    )
    done = _run([sys.executable, "-c", probe], _child_env(PGOLF_LEDGER_DIR=str(tmp_path)))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["1", "True", "True", "True"]
    assert len(_shim_lines(done.stderr)) == 1  # the device patch ran once, before the tracer's


def test_without_triton_installed_a_stand_in_imports_and_known_kernels_run(triton_stub: Path):
    """The CPU build of torch brings no Triton; record scripts import it at module level (#16)."""
    probe = textwrap.dedent("""
        import json, torch, triton, triton.language as tl
        from triton.tools.tensor_descriptor import TensorDescriptor
        @triton.autotune(configs=[triton.Config({"BLOCK": 8}, num_warps=4)], key=["n"])
        @triton.jit
        def _softcapped_ce_fwd_kernel(logits_ptr, losses_ptr, lse_ptr, targets_ptr, s0, s1, n_rows, n_cols,
                                      softcap, block_size: tl.constexpr):
            pid = tl.program_id(0)
        logits, losses, lse = torch.randn(3, 7), torch.empty(3), torch.empty(3)
        _softcapped_ce_fwd_kernel[(triton.cdiv(3, 1),)](logits, losses, lse, torch.tensor([1, 2, 3]), 7, 1, 3, 7,
                                                        30.0, block_size=8)
        import torch._dynamo  # imports inductor, which takes its GPU paths when it believes in a Triton
        from torch.utils._triton import has_triton_package
        print(json.dumps([triton.__version__, type(_softcapped_ce_fwd_kernel).__name__, repr(tl.bfloat16),
                          bool(torch.isfinite(losses).all()), has_triton_package()]))
    """)
    importable = subprocess.run([sys.executable, "-c", "import triton"], capture_output=True).returncode == 0
    if importable:
        pytest.skip("a real Triton is installed here: it wins over the stand-in")
    done = _run([sys.executable, "-c", probe], _child_env())
    assert done.returncode == 0, done.stderr[-2000:]
    version, kind, dtype, finite, torch_sees_triton = json.loads(done.stdout.strip().splitlines()[-1])
    assert version.endswith("pgolf-cpu-stand-in") and kind == "ShimKernel" and finite
    assert torch_sees_triton is False  # the stand-in is the script's, not torch's
    assert dtype == "triton.language.bfloat16"
    done = _run(
        [sys.executable, "-c", "import triton; print(triton.autotune(configs=[], key=[])(1))"],
        _child_env([SHIM, triton_stub]),
    )
    assert done.stdout.strip() == "('real autotune', 1)"  # an installed Triton (the stub) comes first


def test_the_shim_modules_each_do_one_job():
    """#15: the device shim is an installer; hooks, nvidia-smi, torch, torch.cuda and Triton live apart."""
    sizes = {p.name: len(p.read_text().splitlines()) for p in SHIM.glob("pgolf_shim_*.py")}
    assert {
        "pgolf_shim_hooks.py",
        "pgolf_shim_smi.py",
        "pgolf_shim_torch.py",
        "pgolf_shim_cuda.py",
        "pgolf_shim_triton.py",
        "pgolf_shim_gpu.py",
    } <= set(sizes)
    assert max(sizes.values()) < 450, sizes  # lines as ruff format lays them out (120 columns)
    assert "_FAKE_SMI" not in (SHIM / "pgolf_shim_device.py").read_text()
    assert "MetaPathFinder" not in (SHIM / "pgolf_shim_device.py").read_text()


# ---------------------------------------------------------------- behaviours the fixture does not reach

_TRITON_STUB = {
    "triton/__init__.py": """
        from . import language
        def jit(fn=None, **options):
            raise AssertionError("the shim should have replaced triton.jit")
        def autotune(configs, key, **kwargs):
            return lambda kernel: ("real autotune", kernel)
        def cdiv(a, b):
            return -(-a // b)
        """,
    "triton/language.py": "class constexpr:\n    pass\n",
    "triton/tools/__init__.py": "",
    "triton/tools/tensor_descriptor.py": """
        class TensorDescriptor:
            def __init__(self, base, shape, strides, block_shape):
                self.base, self.shape, self.strides, self.block_shape = base, shape, strides, block_shape
            @staticmethod
            def from_tensor(tensor, block_shape):
                return TensorDescriptor(tensor, tensor.shape, tensor.stride(), block_shape)
        """,
}

_PROBE = r"""
import io, json, subprocess, sys, threading, types
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
import triton
import triton.language as tl
from triton.tools.tensor_descriptor import TensorDescriptor

out = {}
calls = []

class Counting(TorchFunctionMode):  # stands in for the tracer's mode, pushed on top of ours
    def __torch_function__(self, func, types, args=(), kwargs=None):
        calls.append(getattr(func, "__name__", "?"))
        return func(*args, **(kwargs or {}))

with Counting():
    made = torch.zeros(2, device="cuda")
out["composed"] = [str(made.device), "zeros" in calls]

seen = {}
def in_thread():
    seen["dev"] = str(torch.ones(1, device=torch.device("cuda", 0)).device)
thread = threading.Thread(target=in_thread); thread.start(); thread.join()
out["thread"] = seen["dev"]

internal = {"__name__": "torch._probe", "torch": torch}
exec("r = [torch.cuda.is_available(), torch.cuda.device_count(), torch.zeros(1).is_cuda]", internal)
out["internal"] = internal["r"]
out["user"] = [torch.cuda.is_available(), torch.cuda.device_count(), torch.zeros(1).is_cuda]

buffer = io.BytesIO(); torch.save({"w": torch.ones(2)}, buffer); buffer.seek(0)
out["load"] = str(torch.load(buffer, map_location="cuda:0")["w"].device)
rng = torch.Generator(device="cuda"); rng.manual_seed(5)
out["generator"] = [str(rng.device), isinstance(rng, torch._C.Generator), torch.randint(0, 9, (2,), generator=rng).numel()]
out["smi_list"] = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.strip()
out["smi_query"] = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
                                  capture_output=True, text=True).stdout.strip()

@triton.jit
def _softcapped_ce_fwd_kernel(logits_ptr, losses_ptr, lse_ptr, targets_ptr, stride_logits_n, stride_logits_v,
                              n_rows, n_cols, softcap, block_size: tl.constexpr):
    pass

@triton.jit
def _softcapped_ce_bwd_kernel(grad_logits_ptr, grad_losses_ptr, lse_ptr, logits_ptr, targets_ptr,
                              stride_logits_n, stride_logits_v, stride_grad_n, stride_grad_v,
                              n_rows, n_cols, softcap, block_size: tl.constexpr):
    pass

@triton.autotune(configs=[], key=["M"])
@triton.jit
def linear_leaky_relu_square_kernel(a_desc, b_desc, c_desc, aux_desc, M, N, K, BLOCK_SIZE_M: tl.constexpr,
                                    BLOCK_SIZE_N: tl.constexpr, BLOCK_SIZE_K: tl.constexpr,
                                    NUM_SMS: tl.constexpr, FORWARD: tl.constexpr):
    pass

@triton.jit
def _fused_leaky_relu_sq_kernel(a_desc, b_desc, c_desc, aux_desc, M, N, K, BLOCK_SIZE_M: tl.constexpr,
                                BLOCK_SIZE_N: tl.constexpr, BLOCK_SIZE_K: tl.constexpr, GROUP_SIZE_M: tl.constexpr,
                                NUM_SMS: tl.constexpr):
    pass

@triton.jit
def my_own_kernel(x_ptr, n):
    pass

gen = torch.Generator().manual_seed(0)
rows, vocab, cap = 6, 11, 5.0
logits = torch.randn(rows, vocab, generator=gen, device="cuda") * 4
targets = torch.randint(0, vocab, (rows,), generator=gen).cuda()
losses, lse = torch.empty(rows), torch.empty(rows)
ce_calls, depth = [], [0]
real_ce = F.cross_entropy
def counting_ce(*args, **kwargs):  # a tracer-like wrapper; modes re-enter it, so count the outer call
    ce_calls.append(depth[0] == 0)
    depth[0] += 1
    try:
        return real_ce(*args, **kwargs)
    finally:
        depth[0] -= 1
F.cross_entropy = counting_ce
told = []  # the tracer is told about kernel losses directly (custom_op bodies hide them from modes)
sys.modules["pgolf_shim_tracer"] = types.SimpleNamespace(
    kernel_loss=lambda lg, t, l: told.append(("loss", t.tolist(), l.clone())),
    kernel_backward=lambda t: told.append(("backward", t.tolist())))
_softcapped_ce_fwd_kernel[(rows,)](logits, losses, lse, targets, logits.stride(0), logits.stride(1), rows, vocab,
                                   cap, block_size=1024, num_warps=4)
scored_in_fwd = sum(ce_calls)
grad_losses = torch.rand(rows, generator=gen)
grad_logits = torch.empty_like(logits)
_softcapped_ce_bwd_kernel[(rows,)](grad_logits, grad_losses, lse, logits, targets, logits.stride(0), logits.stride(1),
                                   grad_logits.stride(0), grad_logits.stride(1), rows, vocab, cap, block_size=1024)
scored_in_bwd = sum(ce_calls) - scored_in_fwd
F.cross_entropy = real_ce
del sys.modules["pgolf_shim_tracer"]
capped = cap * torch.tanh(logits / cap)
out["ce_fwd"] = [torch.allclose(losses, F.cross_entropy(capped, targets, reduction="none"), atol=1e-5),
                 torch.allclose(lse, torch.logsumexp(capped, -1) + cap, atol=1e-5), scored_in_fwd]
out["told"] = [told[0][0], told[0][1] == targets.tolist(), torch.allclose(told[0][2], losses), told[1]
               == ("backward", targets.tolist()), len(told)]
leaf = logits.clone().requires_grad_(True)
(F.cross_entropy(cap * torch.tanh(leaf / cap), targets, reduction="none") * grad_losses).sum().backward()
out["ce_bwd"] = [torch.allclose(grad_logits, leaf.grad, atol=1e-5), scored_in_bwd]

m, n, k = 8, 16, 4
a = torch.randn(m, k, generator=gen).bfloat16()
b = torch.randn(n, k, generator=gen).bfloat16()
c, aux = torch.empty(m, n, dtype=torch.bfloat16), torch.empty(m, n, dtype=torch.bfloat16)
descs = [TensorDescriptor.from_tensor(t, [8, 8]) for t in (a, b, c, aux)]
out["autotune_passthrough"] = type(linear_leaky_relu_square_kernel).__name__
linear_leaky_relu_square_kernel[(1,)](*descs, m, n, k, BLOCK_SIZE_M=8, BLOCK_SIZE_N=16, BLOCK_SIZE_K=8,
                                      NUM_SMS=132, FORWARD=True, num_stages=4, num_warps=8)
pre = (a.float() @ b.float().T)
post = F.leaky_relu(pre, 0.5).square()
grad_out = torch.randn(m, k, generator=gen).bfloat16()
w2t = torch.randn(n, k, generator=gen).bfloat16()  # the backward launch multiplies by w2.T (n, k)
dpre = torch.empty(m, n, dtype=torch.bfloat16)
bwd = [TensorDescriptor.from_tensor(t, [8, 8]) for t in (grad_out, w2t, dpre, c)]
linear_leaky_relu_square_kernel[(1,)](*bwd, m, n, k, 8, 16, 8, 132, False)
expected_dpre = (grad_out.float() @ w2t.float().T) * torch.where(c.float() > 0, 2 * c.float(), 0.5 * c.float())
out["linear"] = [torch.allclose(c.float(), pre, rtol=2e-2, atol=2e-2),
                 torch.allclose(aux.float(), post, rtol=3e-2, atol=3e-2),
                 torch.allclose(dpre.float(), expected_dpre, rtol=3e-2, atol=3e-2)]
fa, fb = torch.randn(8, 4, generator=gen).bfloat16(), torch.randn(16, 4, generator=gen).bfloat16()
act_grad, post = torch.empty(8, 16, dtype=torch.bfloat16), torch.empty(8, 16, dtype=torch.bfloat16)
leaf = fa.float() @ fb.float().T
leaf = leaf.bfloat16().float().requires_grad_(True)
F.leaky_relu(leaf, 0.5).square().sum().backward()
_fused_leaky_relu_sq_kernel[(1,)](*[TensorDescriptor.from_tensor(t, [8, 8]) for t in (fa, fb, act_grad, post)],
                                  8, 16, 4, BLOCK_SIZE_M=8, BLOCK_SIZE_N=16, BLOCK_SIZE_K=8, GROUP_SIZE_M=1, NUM_SMS=1)
out["fused_sq"] = [torch.allclose(act_grad.float(), leaf.grad, rtol=1e-2, atol=1e-2),
                   torch.allclose(post.float(), F.leaky_relu(leaf.detach(), 0.5).square(), rtol=1e-2, atol=1e-2)]
try:
    my_own_kernel[(1,)](torch.zeros(1), 1)
    out["unknown"] = "launched"
except RuntimeError as exc:
    out["unknown"] = str(exc)
print(json.dumps(out))
"""


@pytest.fixture
def triton_stub(tmp_path: Path) -> Path:
    for name, text in _TRITON_STUB.items():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))
    return tmp_path


def test_shim_behaviours_beyond_the_fixture(triton_stub: Path):
    done = _run([sys.executable, "-c", _PROBE], _child_env([SHIM, triton_stub]))
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["composed"] == ["cpu", True]
    assert out["thread"] == "cpu"
    assert out["internal"] == [False, 0, False] and out["user"] == [True, 1, True]
    assert out["load"] == "cpu"
    assert out["generator"] == ["cpu", True, 2]
    assert out["smi_list"].startswith("GPU 0: NVIDIA H100 80GB HBM3")
    assert out["smi_query"] == "NVIDIA H100 80GB HBM3, 81559"
    assert out["ce_fwd"] == [True, True, 0]  # not through F.cross_entropy: a mode may not see it
    assert out["ce_bwd"] == [True, 0]  # the backward did not score again
    assert out["told"] == ["loss", True, True, True, 2]  # the tracer was told of both, once each
    assert out["autotune_passthrough"] == "ShimKernel"
    assert out["linear"] == [True, True, True]
    assert out["fused_sq"] == [True, True]
    assert out["unknown"] == "pgolf-shim: unknown Triton kernel my_own_kernel: cannot check on CPU"
    assert "Triton kernel _softcapped_ce_fwd_kernel (source sha256 " in done.stderr


# ---------------------------------------------------------------- attention shim (in process)


@pytest.fixture(scope="module")
def fa():
    sys.path.insert(0, str(SHIM))
    try:
        import flash_attn
        import flash_attn_interface

        yield flash_attn_interface, flash_attn
    finally:
        sys.path.remove(str(SHIM))
        for name in ("flash_attn_interface", "flash_attn", "flash_attn.flash_attn_interface", "pgolf_shim_attention"):
            sys.modules.pop(name, None)


def _reference(q, k, v, causal=True, window=(-1, -1), softcap=0.0):
    """Plain softmax attention, one (batch, head) at a time, in float64; returns out, lse."""
    batch, t_q, heads, dim = q.shape
    t_k, group = k.shape[1], heads // k.shape[2]
    out = torch.zeros(batch, t_q, heads, v.shape[-1], dtype=torch.float64)
    lse = torch.zeros(batch, heads, t_q, dtype=torch.float64)
    for bi in range(batch):
        for h in range(heads):
            scores = q[bi, :, h].double() @ k[bi, :, h // group].double().T / math.sqrt(dim)
            if softcap:
                scores = softcap * torch.tanh(scores / softcap)
            for i in range(t_q):
                for j in range(t_k):
                    pos = i + t_k - t_q
                    hidden = (
                        (causal and j > pos)
                        or (window[0] >= 0 and j < pos - window[0])
                        or (window[1] >= 0 and j > pos + window[1])
                    )
                    if hidden:
                        scores[i, j] = float("-inf")
            lse[bi, h] = torch.logsumexp(scores, dim=-1)
            out[bi, :, h] = torch.softmax(scores, dim=-1) @ v[bi, :, h // group].double()
    return out, lse


def _qkv(batch, t_q, t_k, heads, kv_heads, dim=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, t_q, heads, dim, generator=gen),
        torch.randn(batch, t_k, kv_heads, dim, generator=gen),
        torch.randn(batch, t_k, kv_heads, dim, generator=gen),
    )


def test_dense_attention_equals_causal_softmax_with_gqa(fa):
    fa3, fa2 = fa
    q, k, v = _qkv(2, 7, 7, heads=4, kv_heads=2)
    expected, _ = _reference(q, k, v)
    assert torch.allclose(fa3.flash_attn_func(q, k, v, causal=True).double(), expected, atol=1e-5)
    assert torch.allclose(fa2.flash_attn_func(q, k, v, causal=True).double(), expected, atol=1e-5)
    assert not torch.allclose(fa3.flash_attn_func(q, k, v, causal=False).double(), expected, atol=1e-3)


def test_dense_attention_bottom_right_causal_windows_softcap_and_lse(fa):
    fa3, fa2 = fa
    q, k, v = _qkv(1, 3, 6, heads=2, kv_heads=1, seed=1)
    expected, expected_lse = _reference(q, k, v)
    out, lse = fa3.flash_attn_func(q, k, v, causal=True, return_attn_probs=True)
    assert torch.allclose(out.double(), expected, atol=1e-5) and torch.allclose(lse.double(), expected_lse, atol=1e-5)
    q, k, v = _qkv(1, 6, 6, heads=2, kv_heads=2, seed=2)
    windowed, _ = _reference(q, k, v, window=(2, 0))
    assert torch.allclose(fa3.flash_attn_func(q, k, v, causal=True, window_size=(2, 0)).double(), windowed, atol=1e-5)
    capped, _ = _reference(q, k, v, softcap=0.5)
    out2, lse2, probs = fa2.flash_attn_func(q, k, v, causal=True, softcap=0.5, return_attn_probs=True)
    assert torch.allclose(out2.double(), capped, atol=1e-5) and probs is None and lse2.shape == (1, 2, 6)


def test_varlen_attention_splits_by_cu_seqlens(fa):
    fa3, fa2 = fa
    q, k, v = _qkv(1, 12, 12, heads=4, kv_heads=2, seed=3)
    cuts = [0, 3, 8, 12]
    cu = torch.tensor(cuts, dtype=torch.int32)
    expected = torch.cat(
        [_reference(q[:, s:e], k[:, s:e], v[:, s:e])[0][0] for s, e in zip(cuts, cuts[1:], strict=False)]
    )
    got3 = fa3.flash_attn_varlen_func(
        q[0], k[0], v[0], cu_seqlens_q=cu, cu_seqlens_k=cu, max_seqlen_q=5, max_seqlen_k=5, causal=True
    )
    got2 = fa2.flash_attn_varlen_func(q[0], k[0], v[0], cu, cu, 5, 5, causal=True)
    assert torch.allclose(got3.double(), expected, atol=1e-5) and torch.allclose(got2.double(), expected, atol=1e-5)
    whole, _ = _reference(q, k, v)
    assert not torch.allclose(got3.double(), whole[0], atol=1e-3)  # documents do not see each other
    _, lse = fa3.flash_attn_varlen_func(q[0], k[0], v[0], cu, cu, 5, 5, causal=True, return_attn_probs=True)
    assert lse.shape == (4, 12)


def test_attention_keeps_dtype_gradients_and_rejects_bad_heads(fa):
    fa3, fa2 = fa
    q, k, v = (t.bfloat16().requires_grad_(True) for t in _qkv(1, 5, 5, heads=4, kv_heads=2, seed=4))
    out = fa3.flash_attn_func(q, k, v, causal=True)
    out.float().sum().backward()
    assert out.dtype == torch.bfloat16 and q.grad is not None and k.grad.shape == k.shape
    from flash_attn.flash_attn_interface import flash_attn_func as fa2_func

    assert fa2_func is fa2.flash_attn_func
    bad_q, bad_k, bad_v = _qkv(1, 5, 5, heads=3, kv_heads=2)
    with pytest.raises(ValueError, match="query heads"):
        fa3.flash_attn_func(bad_q, bad_k, bad_v, causal=True)


# ---------------------------------------------------------------- launcher


def _python312() -> str | None:
    candidates = [os.environ.get("PGOLF_PY312", "")]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[2-9]*/bin/python3.1[2-9]")))
    candidates.append(shutil.which("python3.12") or "")
    for candidate in filter(None, candidates):
        probe = [candidate, "-I", "-c", "import sys; sys.exit(sys.version_info < (3, 12))"]
        try:
            if subprocess.run(probe, capture_output=True, timeout=30, check=False).returncode == 0:
                return candidate
        except (OSError, subprocess.TimeoutExpired):
            continue
    return None


@pytest.fixture
def py312() -> str:
    python = _python312()
    if python is None:
        pytest.skip("no Python 3.12+ interpreter (PGOLF_PY312, python3.12 or pyenv) for the f-string rewrite")
    return python


def _summary_line_number() -> int:
    lines = PY312_SCRIPT.read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.startswith('print(f"summary:'))


def test_launcher_runs_a_312_script_under_311_with_its_file_argv_and_lines(py312: str):
    done = _run([sys.executable, LAUNCHER, PY312_SCRIPT, "x", "y"], _child_env(PGOLF_PY312=py312))
    _final_loss(done)
    assert "argv:x,y file:py312_fstring_script.py" in done.stdout
    assert f"summary:x|y line:{_summary_line_number()}" in done.stdout


def test_launcher_runs_self_extracting_scripts(tmp_path: Path, py312: str):
    plain = tmp_path / "plain_wrapper.py"
    plain.write_text(
        _self_extracting("import sys\nprint('payload', __file__.endswith('plain_wrapper.py'), sys.argv[1:])\n")
    )
    done = _run([sys.executable, LAUNCHER, plain, "a"], _child_env())
    assert done.returncode == 0 and done.stdout.strip() == "payload True ['a']", done.stderr
    needs_312 = tmp_path / "wrapped_312.py"
    needs_312.write_text(_self_extracting(PY312_SCRIPT.read_text()))
    done = _run([sys.executable, LAUNCHER, needs_312, "z"], _child_env(PGOLF_PY312=py312))
    _final_loss(done)
    assert "argv:z file:wrapped_312.py" in done.stdout


def _self_extracting(payload: str) -> str:
    packed = base64.b85encode(lzma.compress(payload.encode())).decode()
    return f'import lzma as L,base64 as B\nexec(L.decompress(B.b85decode("{packed}")))\n'


def test_launcher_refuses_what_cannot_compile_with_one_line(tmp_path: Path, py312: str):
    done = _run([sys.executable, LAUNCHER, PY312_SCRIPT], _child_env())
    assert done.returncode == 3 and len(done.stderr.strip().splitlines()) == 1
    assert "py312_fstring_script.py" in done.stderr and "PGOLF_PY312" in done.stderr
    broken = tmp_path / "broken.py"
    broken.write_text("def f(:\n    pass\n")
    done = _run([sys.executable, LAUNCHER, broken], _child_env(PGOLF_PY312=py312))
    assert done.returncode == 3 and done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "SyntaxError" in done.stderr
    new_grammar = tmp_path / "type_alias.py"
    new_grammar.write_text("type Pair = tuple[int, int]\nprint('never')\n")
    done = _run([sys.executable, LAUNCHER, new_grammar], _child_env(PGOLF_PY312=py312))
    assert done.returncode == 3
    assert done.stderr.strip() == f"pgolf-shim: {new_grammar}: needs Python 3.12 grammar and could not be rewritten"


TEARDOWN_ABORT = """
import atexit, os, sys, threading, time

class AbortsAtTeardown:  # as gloo's threads can at interpreter teardown, after a clean run
    def __del__(self):
        os.abort()

keeper = AbortsAtTeardown()
atexit.register(lambda: print("atexit ran", flush=True))
threading.Thread(target=lambda: (time.sleep(0.2), print("thread joined", flush=True))).start()
mode = sys.argv[1]
if mode == "code":
    sys.exit(3)
if mode == "text":
    sys.exit("stopped early")
if mode == "raise":
    raise ValueError("boom")
"""


@pytest.mark.parametrize(
    "mode, status, on_stderr",
    [("end", 0, ""), ("code", 3, ""), ("text", 1, "stopped early"), ("raise", 1, "ValueError: boom")],
)
def test_launcher_exits_with_pythons_status_and_without_the_teardown_abort(tmp_path: Path, mode, status, on_stderr):
    script = tmp_path / "teardown.py"
    script.write_text(TEARDOWN_ABORT)
    plain = _run([sys.executable, script, mode], _child_env(), timeout=60)
    assert plain.returncode < 0 or plain.returncode == 134  # the abort the launcher must not turn into a failure
    done = _run([sys.executable, LAUNCHER, script, mode], _child_env(), timeout=60)
    assert done.returncode == status, done.stderr
    assert done.stdout.splitlines() == ["thread joined", "atexit ran"]  # Python's exit order, up to atexit
    assert on_stderr in done.stderr


SSM_CHECK = """
import math, torch
import torch.nn.functional as F
import causal_conv1d, mamba_ssm
from causal_conv1d import causal_conv1d_fn
from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

assert mamba_ssm.__version__.endswith("stand-in") and causal_conv1d.__version__.endswith("stand-in")
torch.manual_seed(0)
b, d, n, L, W = 2, 6, 4, 9, 4
x, w, bias = torch.randn(b, d, L), torch.randn(d, W), torch.randn(d)
conv = torch.zeros(b, d, L)
for t in range(L):
    for k in range(W):
        if t - (W - 1) + k >= 0:
            conv[:, :, t] += w[:, k] * x[:, :, t - (W - 1) + k]
assert torch.allclose(causal_conv1d_fn(x, w, bias, activation="silu"), F.silu(conv + bias[:, None]), atol=1e-5)

u = torch.randn(b, d, L, requires_grad=True)
delta, A, B, C = torch.randn(b, d, L), -torch.rand(d, n), torch.randn(b, n, L), torch.randn(b, n, L)
D, z, delta_bias = torch.randn(d), torch.randn(b, d, L), torch.randn(d)
y, last = selective_scan_fn(u, delta, A, B, C, D, z=z, delta_bias=delta_bias, delta_softplus=True, return_last_state=True)
dt = F.softplus(delta + delta_bias[:, None]).tolist()
h = [[[0.0] * n for _ in range(d)] for _ in range(b)]
want = torch.zeros(b, d, L)
for t in range(L):
    for i in range(b):
        for c in range(d):
            for s in range(n):
                h[i][c][s] = math.exp(dt[i][c][t] * A[c, s].item()) * h[i][c][s] + dt[i][c][t] * B[i, s, t].item() * u[i, c, t].item()
            want[i, c, t] = sum(h[i][c][s] * C[i, s, t].item() for s in range(n)) + D[c].item() * u[i, c, t].item()
assert torch.allclose(y, want * F.silu(z), atol=1e-4)
assert torch.allclose(last, torch.tensor(h), atol=1e-4)
y.sum().backward()
assert torch.isfinite(u.grad).all()
print("ssm stand-ins agree")
"""


def test_cuda_only_ssm_packages_have_plain_torch_stand_ins(tmp_path: Path):
    """A hybrid-SSM record imports mamba_ssm's selective scan and causal_conv1d: under the device
    shim both resolve to stand-ins whose outputs match the recurrences written out by hand."""
    script = tmp_path / "ssm.py"
    script.write_text(SSM_CHECK)
    done = _run([sys.executable, script], _child_env(), timeout=120)
    assert done.returncode == 0 and "ssm stand-ins agree" in done.stdout, done.stderr[-2000:]
    plain = _run([sys.executable, "-c", "import mamba_ssm"], {**_child_env(), "PGOLF_SHIM_DEVICE": ""}, timeout=60)
    assert plain.returncode != 0  # without the device shim nothing stands in


FLEX_CHECK = """
import math, torch
from torch.nn.attention.flex_attention import create_block_mask, flex_attention
import torch.nn.attention.flex_attention as fa_mod
assert fa_mod.flex_attention.__module__ == "pgolf_shim_flex", fa_mod.flex_attention.__module__
torch.manual_seed(0)
B, H, L, E, W = 2, 4, 200, 8, 50
q = torch.randn(B, H, L, E, requires_grad=True); k = torch.randn(B, 2, L, E, requires_grad=True); v = torch.randn(B, 2, L, E, requires_grad=True)
def swa(b, h, qi, ki): return (qi > ki) & ((qi - ki) < W)   # the first row sees nothing
mask = create_block_mask(swa, B=None, H=None, Q_LEN=L, KV_LEN=L, device="cpu")
out, lse = flex_attention(q, k, v, block_mask=mask, enable_gqa=True, return_lse=True, score_mod=lambda s, b, h, qi, ki: s + 0.01 * h)
# by hand
kk, vv = k.repeat_interleave(2, 1), v.repeat_interleave(2, 1)
s = q @ kk.transpose(-2, -1) / math.sqrt(E) + 0.01 * torch.arange(H).view(1, H, 1, 1)
qi, ki = torch.arange(L).view(L, 1), torch.arange(L).view(1, L)
vis = (qi > ki) & ((qi - ki) < W)
s = s.masked_fill(~vis, float("-inf"))
p = torch.softmax(s[:, :, 1:], -1)
want = torch.cat([torch.zeros(B, H, 1, E), p @ vv], dim=2)
assert torch.allclose(out, want, atol=1e-5)
assert torch.isinf(lse[:, :, 0]).all() and torch.allclose(lse[:, :, 1:], torch.logsumexp(s[:, :, 1:], -1), atol=1e-5)
g = torch.randn_like(out)
grads = torch.autograd.grad(out, (q, k, v), g)
wants = torch.autograd.grad(want, (q, k, v), g)
assert all(torch.isfinite(x).all() and torch.allclose(x, y, atol=1e-4) for x, y in zip(grads, wants))
print("flex stand-in agrees")
"""


def test_flex_attention_stand_in_matches_torchs_forward_and_the_masked_softmax_gradients(tmp_path: Path):
    """FlexAttention's CPU path has no backward (a hybrid record's training died on it): under the
    device shim the module's flex_attention is a dense stand-in, equal to torch's own forward
    (outputs and log-sum-exp, GQA, score_mod, sliding-window block mask) and to a masked softmax
    written out by hand, gradients included, rows that see no key giving zeros."""
    import torch
    from torch.nn.attention.flex_attention import create_block_mask
    from torch.nn.attention.flex_attention import flex_attention as torch_flex

    sys.path.insert(0, str(SHIM))
    try:
        from pgolf_shim_flex import flex_attention as stand_in
    finally:
        sys.path.remove(str(SHIM))
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 4, 200, 16), torch.randn(2, 2, 200, 16), torch.randn(2, 2, 200, 16)
    mask = create_block_mask(lambda b, h, i, j: (i >= j) & ((i - j) < 50), None, None, 200, 200, device="cpu")

    def score_mod(s, b, h, i, j):
        return s * 0.9 + 0.01 * (i - j)

    want = torch_flex(q, k, v, score_mod=score_mod, block_mask=mask, enable_gqa=True, return_lse=True)
    got = stand_in(q, k, v, score_mod=score_mod, block_mask=mask, enable_gqa=True, return_lse=True)
    assert torch.allclose(got[0], want[0], atol=1e-4) and torch.allclose(got[1], want[1], atol=1e-4)
    script = tmp_path / "flex.py"
    script.write_text(FLEX_CHECK)
    done = _run([sys.executable, script], _child_env(), timeout=120)
    assert done.returncode == 0 and "flex stand-in agrees" in done.stdout, done.stderr[-2000:]
