"""Build the mnq extension: Cython binding + C kernels.

Kernel files are named `<op>__<isa>.c`; each ISA's files are compiled with that
ISA's flags only, so the rest of the library stays runnable on any CPU and the
choice happens at run time (src/kernels/dispatch.c).
"""
import os
import platform
from glob import glob

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# Per-ISA flags; the Makefile (C-only build) carries the same table: change both together.
X86_FLAGS = {
    "avx2": ["-mavx2", "-mfma", "-mf16c"],
    "avxvnni": ["-mavx2", "-mfma", "-mavxvnni"],
    "avx512vnni": ["-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mavx512vnni", "-mfma"],
    "amx": ["-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mavx512vnni", "-mamx-tile", "-mamx-int8"],
}
COMMON_FLAGS = ["-O3", "-std=gnu11", "-pthread", "-Wall", "-Wno-unused-function"]
IS_X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "i386")
IS_AARCH64 = platform.machine().lower() in ("aarch64", "arm64")
ARM_FLAGS = {"neon": ["-march=armv8-a"], "neondot": ["-march=armv8.2-a+dotprod"]}  # as in the Makefile
KERNEL_DIR, ISA_FLAGS = ("x86", X86_FLAGS) if IS_X86 else ("arm", ARM_FLAGS) if IS_AARCH64 else ("", {})
ARCH_MACROS = [("MNQ_X86_KERNELS", "1")] if IS_X86 else [("MNQ_ARM_KERNELS", "1")] if IS_AARCH64 else []
# MNQ_SANITIZE=1 builds with AddressSanitizer + UBSan for the hardening runs
SANITIZE = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"] if os.environ.get("MNQ_SANITIZE") else []


class BuildWithIsaFlags(build_ext):
    def build_extension(self, ext):
        objects = []
        for isa, flags in ISA_FLAGS.items():
            sources = sorted(glob(f"src/kernels/{KERNEL_DIR}/*__{isa}.c"))
            if sources:
                objects += self.compiler.compile(
                    sources, output_dir=self.build_temp, include_dirs=["src/kernels"], macros=ARCH_MACROS,
                    extra_postargs=COMMON_FLAGS + SANITIZE + ["-fPIC"] + flags)
        ext.extra_objects = objects + list(ext.extra_objects or [])
        super().build_extension(ext)


core = Extension(
    "mnq._core",
    sources=["src/mnq/_core.pyx", "src/kernels/net.c", "src/kernels/threadpool.c", "src/kernels/dispatch.c"] + sorted(glob("src/kernels/ref/*.c"))
    + sorted(glob("src/kernels/generic/*.c")),
    include_dirs=["src/kernels", np.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")] + ARCH_MACROS,
    extra_compile_args=COMMON_FLAGS + SANITIZE,
    extra_link_args=["-pthread"] + SANITIZE,
)

setup(ext_modules=cythonize([core], language_level=3), cmdclass={"build_ext": BuildWithIsaFlags})
