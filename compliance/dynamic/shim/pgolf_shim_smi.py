"""A simulated `nvidia-smi` for CPU dynamic checks (the run is on CPU).

Scripts call `nvidia-smi` (a log line, a GPU count), some with check=False, which still fails
when there is no such program. The device shim puts a launcher for this file first on PATH; it
runs isolated (-I -S), so it finds the simulated GPU's identity beside itself.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pgolf_shim_gpu import CUDA_VERSION as CUDA  # noqa: E402
from pgolf_shim_gpu import DRIVER_VERSION as DRIVER
from pgolf_shim_gpu import GPU_MEMORY_MIB as MEM
from pgolf_shim_gpu import GPU_NAME as NAME  # noqa: E402
from pgolf_shim_gpu import fake_gpu_count as count


def field(name, i):
    values = {
        "name": NAME,
        "gpu_name": NAME,
        "index": str(i),
        "count": str(count()),
        "uuid": "GPU-00000000-0000-0000-0000-" + str(i).zfill(12),
        "driver_version": DRIVER,
        "memory.total": f"{MEM} MiB",
        "memory.used": "0 MiB",
        "memory.free": f"{MEM} MiB",
        "utilization.gpu": "0 %",
        "utilization.memory": "0 %",
        "temperature.gpu": "30",
        "power.draw": "70.00 W",
        "power.limit": "700.00 W",
        "compute_cap": "9.0",
        "pci.bus_id": f"00000000:{0x18 + i:02X}:00.0",
        "clocks.sm": "1980 MHz",
        "clocks.max.sm": "1980 MHz",
        "persistence_mode": "Enabled",
    }
    return values.get(name, "[N/A]")


def query(spec, fmt):
    names = [f.strip() for f in spec.split(",") if f.strip()]
    if "noheader" not in fmt:
        print(", ".join(names))
    for i in range(count()):
        values = [field(n, i) for n in names]
        if "nounits" in fmt:
            values = [v.rsplit(" ", 1)[0] if v.endswith((" MiB", " %", " W", " MHz")) else v for v in values]
        print(", ".join(values))


def table():
    rule = "+-----------------------------------------+------------------------+----------------------+"
    print(time.strftime("%a %b %d %H:%M:%S %Y"))
    print("+" + "-" * 89 + "+")
    print(f"| NVIDIA-SMI {DRIVER:<21} Driver Version: {DRIVER:<14} CUDA Version: {CUDA:<9}|")
    print("|" + rule[1:])
    print("| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |")
    print("| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |")
    print("|" + "=" * 41 + "+" + "=" * 24 + "+" + "=" * 22 + "|")
    for i in range(count()):
        print(f"| {i:>3}  {NAME:<28}  On  |   00000000:{0x18 + i:02X}:00.0 Off |                    0 |")
        print(f"| N/A   30C    P0             70W /  700W |       0MiB /  {MEM:>5}MiB |      0%      Default |")
        print(rule)
    print("(pgolf-shim: simulated nvidia-smi; this run is on CPU)")


def main(argv):
    if "-L" in argv or "--list-gpus" in argv:
        for i in range(count()):
            print(f"GPU {i}: {NAME} (UUID: {field('uuid', i)})")
        return 0
    specs = [a.split("=", 1)[1] for a in argv if a.startswith("--query-gpu=")]
    fmt = "".join(a.split("=", 1)[1] for a in argv if a.startswith("--format="))
    if specs:
        query(specs[0], fmt)
    else:
        table()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
