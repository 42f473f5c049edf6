# C-only build: libmnq (static + shared), the mnq-run CLI and the C tests, from the
# same src/kernels/ sources the Python extension compiles. See docs/embedded.md.
#   make                                          native build into build/<triplet>/
#   make CC=aarch64-linux-gnu-gcc                 cross-build for aarch64
#   make CC=arm-linux-gnueabihf-gcc               cross-build for 32-bit ARMv7 (armhf)
#   make check                                    build and run the C tests (QEMU=... to emulate)
CC ?= cc
ifeq ($(origin AR),default)
AR := $(if $(filter %gcc,$(CC)),$(patsubst %gcc,%ar,$(CC)),ar)
endif
# static executables run under qemu-user without a target sysroot and on boards without our .so
STATIC ?= 1
QEMU ?=

TRIPLET := $(shell $(CC) -dumpmachine)
BUILD ?= build/$(TRIPLET)

# Kernel groups, their flags and levels: src/kernels/isa_levels.txt (setup.py reads it too).
ISA_TABLE := src/kernels/isa_levels.txt
ISA_ARCH := $(if $(findstring x86_64,$(TRIPLET)),x86_64,$(if $(findstring aarch64,$(TRIPLET)),aarch64,$(if \
            $(findstring arm-linux-gnueabihf,$(TRIPLET)),armhf)))
KERNEL_DIR := $(if $(filter x86_64,$(ISA_ARCH)),x86,arm)
isa_row = $(shell awk '$$1 == "$(1)" && $$2 == "$(2)" {for (i = $(3); i <= NF; i++) printf "%s ", $$i}' $(ISA_TABLE))
ISA_GROUPS := $(shell awk '$$1 == "$(ISA_ARCH)" {print $$2}' $(ISA_TABLE))
$(foreach g,$(ISA_GROUPS),$(eval FLAGS_$(g) := $(call isa_row,$(ISA_ARCH),$(g),6))$(eval NEEDS_$(g) := $(call isa_row,$(ISA_ARCH),$(g),4)))
# A group is built when the compiler takes its flags (isa_probe.c) and the group it needs is built.
isa_probe = $(shell $(CC) $(FLAGS_$(1)) -c src/kernels/isa_probe.c -o /dev/null 2>/dev/null && echo $(1))
BUILT_GROUPS :=
$(foreach g,$(ISA_GROUPS),$(if $(and $(filter $(NEEDS_$(g)),- $(BUILT_GROUPS)),$(call isa_probe,$(g))),$(eval BUILT_GROUPS += $(g))))
DROPPED_GROUPS := $(filter-out $(BUILT_GROUPS),$(ISA_GROUPS))
$(if $(DROPPED_GROUPS),$(warning $(CC) cannot build the kernel groups: $(DROPPED_GROUPS); building without them))

CFLAGS ?= $(call isa_row,*,common,6)
override CFLAGS += -std=gnu11 -Wall -Wno-unused-function -fPIC -Isrc/kernels -pthread
LDFLAGS += -pthread
LDLIBS += -lm
ifeq ($(STATIC),1)
EXE_LDFLAGS := -static
endif

# Each group's files get that group's flags only; dispatch.c picks at run time.
DEFS := $(if $(filter x86_64,$(ISA_ARCH)),-DMNQ_X86_KERNELS=1) $(if $(filter aarch64 armhf,$(ISA_ARCH)),-DMNQ_ARM_KERNELS=1) \
        $(foreach g,$(BUILT_GROUPS),-DMNQ_HAVE_$(shell echo $(g) | tr a-z A-Z)=1) \
        -DMNQ_KERNELS_BUILT='"$(strip $(BUILT_GROUPS))"' -DMNQ_KERNELS_NOT_BUILT='"$(strip $(DROPPED_GROUPS))"'
ISA_SOURCES := $(foreach g,$(BUILT_GROUPS),$(wildcard src/kernels/$(KERNEL_DIR)/*__$(g).c))

LIB_SOURCES := src/kernels/net.c src/kernels/threadpool.c src/kernels/dispatch.c src/kernels/mnq_file.c $(wildcard src/kernels/ref/*.c) \
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
