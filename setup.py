"""Build the mnq extension: Cython binding + C kernels.

Kernel files are named `<op>__<group>.c`; each group's files are compiled with that
group's flags only (src/kernels/isa_levels.txt, the table the Makefile reads too),
so the rest of the library stays runnable on any CPU and the choice happens at run
time (src/kernels/dispatch.c). A group whose flags this compiler rejects is left
out, with a warning, and mnq.info() lists it under kernels_not_built.
"""
import os
import platform
from glob import glob

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CompileError

ISA_TABLE = "src/kernels/isa_levels.txt"


def read_isa_table(arch):
    """(common flags, [(group, needs, flags)] for arch) from isa_levels.txt."""
    common, groups = [], []
    with open(ISA_TABLE) as f:
        for line in f:
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            row_arch, group, _level, needs, _features, *flags = fields
            if row_arch == "*" and group == "common":
                common = flags
            elif row_arch == arch:
                groups.append((group, needs, flags))
    return common, groups


# the x86 kernels are x86-64 only; other machines (i686, armv7 via pip) build the scalar library
MACHINE = platform.machine().lower()
ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}.get(MACHINE)
KERNEL_DIR = "x86" if ARCH == "x86_64" else "arm"
OPTIMIZE, ISA_GROUPS = read_isa_table(ARCH)
ARCH_MACROS = [("MNQ_X86_KERNELS", "1")] if ARCH == "x86_64" else [("MNQ_ARM_KERNELS", "1")] if ARCH else []
COMMON_FLAGS = OPTIMIZE + ["-std=gnu11", "-pthread", "-Wall", "-Wno-unused-function"]
# MNQ_SANITIZE=1 builds with AddressSanitizer + UBSan for the hardening runs
SANITIZE = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"] if os.environ.get("MNQ_SANITIZE") else []


class BuildWithIsaFlags(build_ext):
    def compiles(self, flags):
        try:
            self.compiler.compile(["src/kernels/isa_probe.c"], output_dir=os.path.join(self.build_temp, "probe"),
                                  extra_postargs=flags)
            return True
        except CompileError:
            return False

    def build_extension(self, ext):
        built, objects = [], []
        for group, needs, flags in ISA_GROUPS:
            if (needs == "-" or needs in built) and self.compiles(flags):
                built.append(group)
        dropped = [group for group, _, _ in ISA_GROUPS if group not in built]
        if dropped:
            self.warn(f"the compiler cannot build the kernel groups {' '.join(dropped)}; building without them")
        macros = ARCH_MACROS + [(f"MNQ_HAVE_{group.upper()}", "1") for group in built] + [
            ("MNQ_KERNELS_BUILT", f'"{" ".join(built)}"'), ("MNQ_KERNELS_NOT_BUILT", f'"{" ".join(dropped)}"')]
        for group, _, flags in ISA_GROUPS:
            sources = sorted(glob(f"src/kernels/{KERNEL_DIR}/*__{group}.c"))
            if group in built and sources:
                objects += self.compiler.compile(
                    sources, output_dir=self.build_temp, include_dirs=["src/kernels"], macros=macros,
                    extra_postargs=COMMON_FLAGS + SANITIZE + ["-fPIC"] + flags)
        ext.define_macros = list(ext.define_macros) + macros
        ext.extra_objects = objects + list(ext.extra_objects or [])
        super().build_extension(ext)


core = Extension(
    "mnq._core",
    sources=["src/mnq/_core.pyx", "src/kernels/net.c", "src/kernels/threadpool.c", "src/kernels/dispatch.c"] + sorted(glob("src/kernels/ref/*.c"))
    + sorted(glob("src/kernels/generic/*.c")),
    include_dirs=["src/kernels", np.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    extra_compile_args=COMMON_FLAGS + SANITIZE,
    extra_link_args=["-pthread"] + SANITIZE,
)

setup(ext_modules=cythonize([core], language_level=3), cmdclass={"build_ext": BuildWithIsaFlags})
