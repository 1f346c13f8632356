#!/usr/bin/env python3
"""Compiles kernel files with NVRTC (through ctypes, no GPU needed), exactly as the CUDA
engine does at run time: kernels/common.cuh prepended to each kernels/*.cu file.

usage: nvrtc_compile.py LIBNVRTC OUTDIR ARCH KERNEL.cu...
Writes OUTDIR/<stem>.<arch>.ptx; prints the NVRTC log and exits 1 on a compile error.
"""
import ctypes
import os
import sys


def main() -> int:
    lib_path, out_dir, arch, *files = sys.argv[1:]
    nvrtc = ctypes.CDLL(lib_path)
    nvrtc.nvrtcGetErrorString.restype = ctypes.c_char_p
    major, minor = ctypes.c_int(), ctypes.c_int()
    nvrtc.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    failed = False
    for path in files:
        kernels = os.path.dirname(path)
        with open(os.path.join(kernels, "common.cuh"), encoding="utf-8") as f:
            common = f.read()
        with open(path, encoding="utf-8") as f:
            body = f.read()
        src = (common + "\n" + body).encode()
        name = os.path.basename(path)
        prog = ctypes.c_void_p()
        rc = nvrtc.nvrtcCreateProgram(ctypes.byref(prog), src, name.encode(), 0, None, None)
        if rc != 0:
            print(f"{name}: nvrtcCreateProgram: {nvrtc.nvrtcGetErrorString(rc).decode()}")
            return 1
        # The engine's options (src/engine/cuda/device.rs), with a virtual architecture.
        opts = [f"--gpu-architecture={arch}".encode(), b"--std=c++17"]
        arr = (ctypes.c_char_p * len(opts))(*opts)
        rc = nvrtc.nvrtcCompileProgram(prog, len(opts), arr)
        size = ctypes.c_size_t()
        nvrtc.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        nvrtc.nvrtcGetProgramLog(prog, log)
        text = log.value.decode(errors="replace").strip()
        if rc != 0:
            print(f"{name} ({arch}, NVRTC {major.value}.{minor.value}): compile error:\n{text}")
            failed = True
        else:
            if text:
                print(f"{name} ({arch}): warnings:\n{text}")
            nvrtc.nvrtcGetPTXSize(prog, ctypes.byref(size))
            ptx = ctypes.create_string_buffer(size.value)
            nvrtc.nvrtcGetPTX(prog, ptx)
            stem = os.path.splitext(name)[0]
            with open(os.path.join(out_dir, f"{stem}.{arch}.ptx"), "wb") as f:
                f.write(ptx.value)
        nvrtc.nvrtcDestroyProgram(ctypes.byref(prog))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
