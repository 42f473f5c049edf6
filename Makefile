# C-only build: libmnq (static + shared), the mnq-run CLI and the C tests, from the
# same src/kernels/ sources the Python extension compiles. See docs/embedded.md.
#   make                                          native build into build/<triplet>/
#   make CC=aarch64-linux-gnu-gcc                 cross-build for aarch64
#   make CC=arm-linux-gnueabihf-gcc               cross-build for 32-bit ARMv7 (armhf)
#   make OPENMP=0                                 single-threaded, no libgomp
#   make check                                    build and run the C tests (QEMU=... to emulate)
CC ?= cc
ifeq ($(origin AR),default)
AR := $(if $(filter %gcc,$(CC)),$(patsubst %gcc,%ar,$(CC)),ar)
endif
OPENMP ?= 1
# static executables run under qemu-user without a target sysroot and on boards without our .so
STATIC ?= 1
QEMU ?=

TRIPLET := $(shell $(CC) -dumpmachine)
BUILD ?= build/$(TRIPLET)
CFLAGS ?= -O2
CFLAGS += -std=gnu11 -Wall -Wno-unused-function -fPIC -Isrc/kernels
CFLAGS += -pthread
LDFLAGS += -pthread
LDLIBS += -lm
ifeq ($(OPENMP),1)
CFLAGS += -fopenmp
LDFLAGS += -fopenmp
endif
ifeq ($(STATIC),1)
EXE_LDFLAGS := -static
endif

# Each ISA's kernel files get that ISA's flags only; dispatch.c picks at run time.
# setup.py (the Python build) carries the same table: change both together.
ISA_SOURCES :=
ifneq ($(findstring x86_64,$(TRIPLET)),)
DEFS := -DMNQ_X86_KERNELS=1
ISA_SOURCES += $(foreach isa,avx2 avxvnni avx512vnni amx,$(wildcard src/kernels/x86/*__$(isa).c))
FLAGS_avx2 := -mavx2 -mfma -mf16c
FLAGS_avxvnni := -mavx2 -mfma -mavxvnni
FLAGS_avx512vnni := -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512vnni -mfma
FLAGS_amx := $(FLAGS_avx512vnni) -mamx-tile -mamx-int8
endif
ifneq ($(findstring aarch64,$(TRIPLET)),)
DEFS := -DMNQ_ARM_KERNELS=1
ISA_SOURCES += $(wildcard src/kernels/arm/*__neon.c) $(wildcard src/kernels/arm/*__neondot.c)
FLAGS_neon := -march=armv8-a
FLAGS_neondot := -march=armv8.2-a+dotprod
endif
ifneq ($(findstring arm-linux-gnueabihf,$(TRIPLET)),)
DEFS := -DMNQ_ARM_KERNELS=1
# the library itself stays runnable on ARMv7 boards without NEON; only *__neon.c needs it
ISA_SOURCES += $(wildcard src/kernels/arm/*__neon.c)
FLAGS_neon := -mfpu=neon
endif

LIB_SOURCES := src/kernels/net.c src/kernels/dispatch.c src/kernels/mnq_file.c $(wildcard src/kernels/ref/*.c) \
               $(wildcard src/kernels/generic/*.c) $(ISA_SOURCES)
LIB_OBJECTS := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(LIB_SOURCES))
isa_of = $(lastword $(subst __, ,$(basename $(notdir $(1)))))

LIBA := $(BUILD)/libmnq.a
LIBSO := $(BUILD)/libmnq.so
PROGRAMS := $(BUILD)/mnq-run $(BUILD)/test_kernels $(BUILD)/test_api $(BUILD)/test_limits

all: $(LIBA) $(LIBSO) $(PROGRAMS)

$(BUILD)/obj/%.o: src/%.c src/kernels/mnq.h src/kernels/internal.h $(wildcard src/kernels/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEFS) $(FLAGS_$(call isa_of,$<)) -c $< -o $@

$(LIBA): $(LIB_OBJECTS)
	rm -f $@ && $(AR) rcs $@ $^

$(LIBSO): $(LIB_OBJECTS)
	$(CC) -shared $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/mnq-run: src/cli/mnq_run.c $(LIBA)
	$(CC) $(CFLAGS) $(EXE_LDFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The kernel test includes the NEON requantization header directly, so it needs NEON flags.
$(BUILD)/test_kernels: tests/c/test_kernels.c $(LIBA)
	$(CC) $(CFLAGS) $(DEFS) $(FLAGS_neon) $(EXE_LDFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/test_api: tests/c/test_api.c $(LIBA)
	$(CC) $(CFLAGS) $(EXE_LDFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/test_limits: tests/c/test_limits.c $(LIBA)
	$(CC) $(CFLAGS) $(EXE_LDFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# make check MODEL=x.mnq [QEMU="qemu-aarch64 -cpu cortex-a53"]
check: all
	$(QEMU) $(BUILD)/test_kernels
	$(QEMU) $(BUILD)/test_limits $(if $(QEMU),100)
	$(if $(MODEL),$(QEMU) $(BUILD)/test_api $(MODEL))

clean:
	rm -rf $(BUILD)

.PHONY: all check clean
