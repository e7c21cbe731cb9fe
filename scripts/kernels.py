#!/usr/bin/env python3
"""The CUDA kernels: kernels/woolly.cu compiled to kernels/woolly.ptx with NVRTC.

    python3 scripts/kernels.py tools   # the NVRTC/ptxas wheels into build/cuda-tools (once)
    python3 scripts/kernels.py build   # kernels/woolly.cu -> kernels/woolly.ptx (written when changed)
    python3 scripts/kernels.py check   # fails when woolly.ptx is stale; ptxas for sm_75..sm_90,
                                       # a register/spill table (and JSON, --json PATH)

Standard library only: NVRTC is called through ctypes, ptxas as a subprocess. The PTX
targets compute_75 and is byte-for-byte the same for the same source (fixed program
name, no -lineinfo), so the checked-in file can be compared.
"""

import argparse
import ctypes
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(ROOT, "build", "cuda-tools")
NVIDIA = os.path.join(TOOLS, "nvidia")
NVRTC_LIB = os.path.join(NVIDIA, "cuda_nvrtc", "lib", "libnvrtc.so.12")
NVRTC_BUILTINS = os.path.join(NVIDIA, "cuda_nvrtc", "lib", "libnvrtc-builtins.so.12.2")
CUDA_INCLUDE = os.path.join(NVIDIA, "cuda_runtime", "include")
PTXAS = os.path.join(NVIDIA, "cuda_nvcc", "bin", "ptxas")
WHEELS = [
    "nvidia-cuda-nvrtc-cu12==12.2.140",
    "nvidia-cuda-runtime-cu12==12.2.140",
    "nvidia-cuda-nvcc-cu12==12.2.140",
]

DEFAULT_SRC = "kernels/woolly.cu"
DEFAULT_OUT = "kernels/woolly.ptx"
DEFAULT_JSON = "build/kernels-report.json"
PROGRAM_NAME = b"woolly.cu"  # NVRTC embeds it; fixed so the PTX does not depend on paths
VIRTUAL_ARCH = "compute_75"
ARCHS = ["sm_75", "sm_80", "sm_86", "sm_89", "sm_90"]


def die(msg):
    print(f"kernels: {msg}", file=sys.stderr)
    sys.exit(1)


def rel(path):
    """The path as given when relative; relative to the repository when inside it."""
    if not os.path.isabs(path):
        return path
    r = os.path.relpath(path, ROOT)
    return path if r.startswith("..") else r


def tools_present():
    return all(os.path.exists(p) for p in (NVRTC_LIB, os.path.join(CUDA_INCLUDE, "cuda_fp16.h"), PTXAS))


def cmd_tools(_args=None):
    if tools_present():
        return
    print(f"kernels: installing {' '.join(WHEELS)} into {rel(TOOLS)}", file=sys.stderr)
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--target", TOOLS, *WHEELS]
    try:
        rc = subprocess.call(cmd)
    except OSError as e:
        rc = 1
        print(f"kernels: {e}", file=sys.stderr)
    if rc != 0 or not tools_present():
        die(
            "needs the nvidia-cuda-* wheels from PyPI (" + ", ".join(WHEELS) + ") in "
            f"{rel(TOOLS)}; pip could not install them (no network?). Run: {' '.join(cmd)}"
        )
    if os.path.exists(PTXAS):
        os.chmod(PTXAS, os.stat(PTXAS).st_mode | 0o111)


# ---------------------------------------------------------------- NVRTC

def load_nvrtc():
    if os.path.exists(NVRTC_BUILTINS):
        # libnvrtc dlopens its builtins by soname; preloading it makes that find this one.
        ctypes.CDLL(NVRTC_BUILTINS, mode=ctypes.RTLD_GLOBAL)
    lib = ctypes.CDLL(NVRTC_LIB, mode=ctypes.RTLD_GLOBAL)
    lib.nvrtcGetErrorString.restype = ctypes.c_char_p
    lib.nvrtcGetErrorString.argtypes = [ctypes.c_int]
    return lib


def nvrtc_version(lib):
    major, minor = ctypes.c_int(), ctypes.c_int()
    lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    return f"{major.value}.{minor.value}"


def compile_ptx(src):
    """Returns (ptx bytes, log text); exits 1 with the log on a compile error."""
    try:
        with open(src, "rb") as f:
            source = f.read()
    except OSError as e:
        die(f"cannot read {rel(src)}: {e}")
    lib = load_nvrtc()

    def ok(rc, what):
        if rc != 0:
            die(f"{what}: {lib.nvrtcGetErrorString(rc).decode()}")

    prog = ctypes.c_void_p()
    ok(lib.nvrtcCreateProgram(ctypes.byref(prog), source, PROGRAM_NAME, 0, None, None),
       "nvrtcCreateProgram")
    try:
        opts = [
            f"--gpu-architecture={VIRTUAL_ARCH}",
            "--std=c++17",
            "-I", os.path.dirname(os.path.abspath(src)),
            "-I", CUDA_INCLUDE,
        ]
        copts = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
        rc = lib.nvrtcCompileProgram(prog, len(opts), copts)

        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        buf = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, buf)
        log = buf.value.decode(errors="replace").strip()

        if rc != 0:
            print(log, file=sys.stderr)
            die(f"{rel(src)} does not compile (NVRTC {nvrtc_version(lib)}: "
                f"{lib.nvrtcGetErrorString(rc).decode()})")
        if log:
            print(log, file=sys.stderr)  # warnings

        ok(lib.nvrtcGetPTXSize(prog, ctypes.byref(size)), "nvrtcGetPTXSize")
        buf = ctypes.create_string_buffer(size.value)
        ok(lib.nvrtcGetPTX(prog, buf), "nvrtcGetPTX")
        return buf.raw[: size.value].rstrip(b"\0"), log
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def resolve(path):
    return path if os.path.isabs(path) else os.path.join(ROOT, path)


def ensure_tools():
    if not tools_present():
        cmd_tools()


def cmd_build(args):
    ensure_tools()
    src, out = resolve(args.src), resolve(args.out)
    ptx, _ = compile_ptx(src)
    try:
        with open(out, "rb") as f:
            old = f.read()
    except OSError:
        old = None
    entries = len(re.findall(rb"^\s*(?:\.visible\s+)?\.entry\s", ptx, re.M))
    if old == ptx:
        print(f"{rel(out)} is up to date ({entries} kernels, {len(ptx)} bytes)")
        return
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(ptx)
    os.replace(tmp, out)
    print(f"wrote {rel(out)} ({entries} kernels, {len(ptx)} bytes)")


# ---------------------------------------------------------------- ptxas

RE_ENTRY = re.compile(r"Compiling entry function '([^']+)' for '(sm_\d+)'")
RE_PROPS = re.compile(r"Function properties for (\S+)")
RE_SPILL = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
RE_REGS = re.compile(r"Used (\d+) registers")


def parse_ptxas(text):
    """ptxas -v output -> {entry: {"registers", "spill_stores", "spill_loads", "stack"}}."""
    out = {}
    entry = props = None
    for line in text.splitlines():
        m = RE_ENTRY.search(line)
        if m:
            entry = m.group(1)
            out.setdefault(entry, {"registers": 0, "spill_stores": 0, "spill_loads": 0, "stack": 0})
            props = None
            continue
        m = RE_PROPS.search(line)
        if m:
            props = m.group(1)
            continue
        m = RE_SPILL.search(line)
        if m and props is not None and props == entry:
            d = out[entry]
            d["stack"], d["spill_stores"], d["spill_loads"] = map(int, m.groups())
            continue
        m = RE_REGS.search(line)
        if m and entry is not None:
            out[entry]["registers"] = int(m.group(1))
    return out


def run_ptxas(ptx_path, arch):
    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as t:
        cubin = t.name
    try:
        p = subprocess.run(
            [PTXAS, f"-arch={arch}", "-v", "--warn-on-spills", "-o", cubin, ptx_path],
            capture_output=True, text=True,
        )
    finally:
        os.unlink(cubin)
    text = p.stdout + p.stderr
    if p.returncode != 0:
        print(text, file=sys.stderr)
        die(f"ptxas -arch={arch} failed (exit {p.returncode})")
    for line in text.splitlines():
        if "warning" in line.lower():
            print(f"{arch}: {line.strip()}", file=sys.stderr)
    return parse_ptxas(text)


def cell(d):
    spills = d["spill_stores"] + d["spill_loads"]
    return f"{d['registers']}r/{spills}s" if spills else f"{d['registers']}r"


def cmd_check(args):
    ensure_tools()
    src, out = resolve(args.src), resolve(args.out)
    ptx, _ = compile_ptx(src)
    try:
        with open(out, "rb") as f:
            old = f.read()
    except OSError:
        old = None
    if old != ptx:
        die(f"{rel(out)} is stale: run make kernels")

    report = {}  # arch -> entry -> figures
    for arch in ARCHS:
        report[arch] = run_ptxas(out, arch)

    names = []
    for arch in ARCHS:
        for n in report[arch]:
            if n not in names:
                names.append(n)
    names.sort()

    width = max([len("kernel")] + [len(n) for n in names])
    cols = [max(len(a), 8) for a in ARCHS]
    print(f"{'kernel':<{width}}  " + "  ".join(f"{a:>{w}}" for a, w in zip(ARCHS, cols)))
    for n in names:
        cells = [cell(report[a][n]) if n in report[a] else "-" for a in ARCHS]
        print(f"{n:<{width}}  " + "  ".join(f"{c:>{w}}" for c, w in zip(cells, cols)))
    all_figs = [d for a in ARCHS for d in report[a].values()]
    max_regs = max((d["registers"] for d in all_figs), default=0)
    total_spills = sum(d["spill_stores"] + d["spill_loads"] for d in all_figs)
    print(f"{len(names)} kernels, {len(ARCHS)} archs ({', '.join(ARCHS)}): "
          f"max {max_regs} registers, {total_spills} spill bytes in all; {rel(out)} is up to date")

    jpath = resolve(args.json)
    os.makedirs(os.path.dirname(jpath) or ".", exist_ok=True)
    with open(jpath, "w") as f:
        json.dump({
            "ptx": rel(out),
            "virtual_arch": VIRTUAL_ARCH,
            "archs": ARCHS,
            "kernels": {n: {a: report[a].get(n) for a in ARCHS} for n in names},
            "summary": {"kernels": len(names), "max_registers": max_regs,
                        "spill_bytes": total_spills},
        }, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"wrote {rel(jpath)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("tools", help="install the NVRTC/ptxas wheels into build/cuda-tools")
    for name, hlp in (("build", "compile the kernels to PTX"),
                      ("check", "fail on stale PTX; ptxas for each arch; register/spill table")):
        p = sub.add_parser(name, help=hlp)
        p.add_argument("--src", default=DEFAULT_SRC, help=f"CUDA source (default {DEFAULT_SRC})")
        p.add_argument("--out", default=DEFAULT_OUT, help=f"PTX file (default {DEFAULT_OUT})")
        if name == "check":
            p.add_argument("--json", default=DEFAULT_JSON, help=f"report path (default {DEFAULT_JSON})")
    args = ap.parse_args()
    {"tools": cmd_tools, "build": cmd_build, "check": cmd_check}[args.cmd](args)


if __name__ == "__main__":
    main()
