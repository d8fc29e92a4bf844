# Makefile - builds every cinder program into build/bin, tests into build/test.
#
# Conventions (no need to edit this file to add code):
#   DIR/main.c        -> build/bin/DIR            (the processes, the holder among them)
#   DIR/cmd_NAME.c    -> build/bin/NAME            (tools; '_' in NAME becomes '-')
#   other DIR/*.c     -> build/lib/libcinder_DIR.a (linked into every program; common/tok:
#                        libcinder_common_tok.a)
#   kernels/*.cu, worker/*.cu, kernels/*_ref.c -> build/lib/libcinder_cuda.a (when nvcc exists)
#   tests/unit/test_*.c -> build/test/test_*       (cmocka; run by `make test`)
#   tests/e2e/test_*.c  -> build/test/e2e_*        (real processes over HTTP; `make test`)
#   tests/gpu/test_*.c[u] -> build/test-gpu/*      (`make test-gpu`, on a machine with a GPU)
#   bench/kernels/bench_*.cu -> build/bench/*      (`make bench-gpu`)
#
# make SANITIZE=address|undefined|thread builds instrumented into build-$(SANITIZE)/.

CC       ?= cc
NVCC     ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
BUILD    ?= build
OPT      ?= -O2
CFLAGS   += $(OPT) -g -std=gnu11 -Wall -Wextra -Wno-unused-parameter -pthread -MMD -MP \
            -fno-strict-aliasing -D_GNU_SOURCE
LDLIBS   += -lzmq -lmsgpackc -luv -lhttp_parser -lcjson -lpcre2-8 -lutf8proc -lm -lpthread -ldl
NVFLAGS  ?= -O3 -std=c++17 -lineinfo \
            -gencode=arch=compute_90a,code=sm_90a -gencode=arch=compute_90,code=sm_90 \
            -Xcompiler -fPIC,-Wall -MMD -MP

ifneq ($(SANITIZE),)
BUILD    := build-$(SANITIZE)
CFLAGS   += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer
LDFLAGS  += -fsanitize=$(SANITIZE)
endif
# `make SANITIZE=thread test`: a race stops the process that has it (so the test around it
# fails); libzmq's own hand-offs, invisible to the sanitizer, are suppressed (tests/tsan.supp)
ifeq ($(SANITIZE),thread)
export TSAN_OPTIONS := suppressions=$(CURDIR)/tests/tsan.supp halt_on_error=1 $(TSAN_OPTIONS)
# the processes run several times slower: the e2e tests' speed bounds scale (cluster.h)
export CINDER_TEST_TIME_SCALE ?= 6
endif

ifneq ($(NVCC),)
HAVE_CUDA := 1
CFLAGS   += -DCINDER_CUDA -I$(CUDA_HOME)/include
CUDA_LIBS := -L$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcudart -lstdc++
ifneq ($(wildcard worker/cuda_backend.cu),)
CFLAGS   += -DCINDER_CUDA_BACKEND
endif
endif

# common/tok: the HF tokenizer library that the tokenizer and detokenizer processes (and
# bench/, scripts/) share; its archive is libcinder_common_tok.a
LIB_DIRS := common common/tok tokenizer router worker detokenizer scripts bench
lib_srcs = $(filter-out $(1)/main.c $(1)/cmd_%.c,$(wildcard $(1)/*.c))
obj      = $(patsubst %.c,$(BUILD)/obj/%.o,$(patsubst %.cu,$(BUILD)/obj/%.cu.o,$(1)))

$(foreach d,$(LIB_DIRS),$(eval LIB_$(d) := $(if $(call lib_srcs,$(d)),$(BUILD)/lib/libcinder_$(subst /,_,$(d)).a)))
C_LIBS   := $(foreach d,$(LIB_DIRS),$(LIB_$(d)))

# bench/*.cu (the device ceilings, the decode breakdown) join the archive for the benchmark
# programs; nothing of the worker references them, so they never link into it
CUDA_SRCS := $(wildcard kernels/*.cu worker/*.cu bench/*.cu) $(wildcard kernels/*_ref.c)
ifeq ($(HAVE_CUDA),1)
CUDA_LIB := $(if $(CUDA_SRCS),$(BUILD)/lib/libcinder_cuda.a)
endif
# worker/*.cu must not land in the plain C worker library
ALL_LIBS := $(C_LIBS) $(CUDA_LIB)
# link order: dependents first, common last
LINK_LIBS := $(LIB_bench) $(LIB_scripts) $(LIB_detokenizer) $(LIB_router) $(LIB_worker) \
             $(CUDA_LIB) $(if $(CUDA_LIB),$(LIB_worker)) $(LIB_tokenizer) $(LIB_common/tok) \
             $(LIB_common)   # worker again: the CUDA engine's FP8 uses worker/fp8_*.c

PROCS    := $(foreach d,tokenizer router worker detokenizer holder,$(if $(wildcard $(d)/main.c),$(d)))
CMDS     := $(wildcard */cmd_*.c */*/cmd_*.c)
cmd_name = $(subst _,-,$(patsubst cmd_%.c,%,$(notdir $(1))))
BINS     := $(addprefix $(BUILD)/bin/,$(PROCS)) \
            $(foreach c,$(CMDS),$(BUILD)/bin/$(call cmd_name,$(c)))

UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/test/%,$(wildcard tests/unit/test_*.c))
E2E_TESTS  := $(patsubst tests/e2e/test_%.c,$(BUILD)/test/e2e_%,$(wildcard tests/e2e/test_*.c))
E2E_SUPPORT := $(filter-out tests/e2e/test_%.c,$(wildcard tests/e2e/*.c))
GPU_TESTS  := $(patsubst tests/gpu/%.cu,$(BUILD)/test-gpu/%,$(wildcard tests/gpu/test_*.cu)) \
              $(patsubst tests/gpu/%.c,$(BUILD)/test-gpu/%,$(wildcard tests/gpu/test_*.c))
KBENCHES   := $(patsubst bench/kernels/%.cu,$(BUILD)/bench/%,$(wildcard bench/kernels/bench_*.cu))

# prerequisites below use $$(...) expanded per target
.SECONDEXPANSION:

.PHONY: all test test-gpu test-gpu-sanitize bench bench-gpu setup clean FORCE
.SECONDARY:

all: $(BINS) $(UNIT_TESTS) $(E2E_TESTS)

# ---- objects and libraries (rebuilt when the flags change: $(BUILD)/.flags)
FLAGS_NOW := $(CC) $(CFLAGS) | $(NVCC) $(NVFLAGS)
$(BUILD)/.flags: FORCE
	@mkdir -p $(BUILD)
	@echo '$(FLAGS_NOW)' | cmp -s - $@ || echo '$(FLAGS_NOW)' > $@
FORCE:

$(BUILD)/obj/%.o: %.c $(BUILD)/.flags
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/obj/%.cu.o: %.cu $(BUILD)/.flags
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -c $< -o $@

$(BUILD)/lib/libcinder_cuda.a: $(call obj,$(CUDA_SRCS))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/lib/libcinder_%.a: $$(call obj,$$(call lib_srcs,$$(subst _,/,%)))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# ---- programs
$(BUILD)/bin/%: $$(call obj,$$*/main.c) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $< $(LINK_LIBS) $(CUDA_LIBS) $(LDLIBS) -o $@

define cmd_rule
$(BUILD)/bin/$(call cmd_name,$(1)): $(call obj,$(1)) $(ALL_LIBS)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) $$< $$(LINK_LIBS) $$(CUDA_LIBS) $$(LDLIBS) -o $$@
endef
$(foreach c,$(CMDS),$(eval $(call cmd_rule,$(c))))

# ---- tests
$(BUILD)/test/test_%: $(BUILD)/obj/tests/unit/test_%.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $< $(LINK_LIBS) $(CUDA_LIBS) $(LDLIBS) -lcmocka -o $@

$(BUILD)/test/e2e_%: $(BUILD)/obj/tests/e2e/test_%.o $(call obj,$(E2E_SUPPORT)) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $< $(call obj,$(E2E_SUPPORT)) $(LINK_LIBS) $(CUDA_LIBS) $(LDLIBS) -lcmocka -o $@

$(BUILD)/test-gpu/%: $(BUILD)/obj/tests/gpu/%.cu.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(NVCC) $(filter-out -MMD -MP,$(NVFLAGS)) $< $(LINK_LIBS) -lcublasLt -lcublas $(LDLIBS) -o $@

$(BUILD)/test-gpu/%: $(BUILD)/obj/tests/gpu/%.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $< $(LINK_LIBS) $(CUDA_LIBS) $(LDLIBS) -o $@

$(BUILD)/bench/%: $(BUILD)/obj/bench/kernels/%.cu.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(NVCC) $(filter-out -MMD -MP,$(NVFLAGS)) $< $(LINK_LIBS) -lcublasLt -lcublas $(LDLIBS) -o $@

# `make test`: sets the machine up when needed (packages, default model), builds, runs
# every CPU test and a short fuzzing run (10 s a target), and prints one summary line. The
# end-to-end tests launch the programs of $(BUILD) (CINDER_BIN), not whatever build/ holds.
test:
	@scripts/setup.sh --check-only >/dev/null 2>&1 || scripts/setup.sh
	@$(MAKE) --no-print-directory all
	@FUZZ_SECONDS=10 BUILD=$(BUILD) CINDER_BIN=$(CURDIR)/$(BUILD)/bin tests/run.sh $(UNIT_TESTS) $(E2E_TESTS) \
	  tests/chat_oracle.py scripts/fuzz.sh

# On the GPU machine (binaries built here, libraries bundled, none of our Debian packages
# there): `make test-gpu PREBUILT=1 BUILD=.devcarry/build` runs what scripts/gpu_carry.sh built
# without trying to rebuild it; scripts/gpu.sh does tests, benchmarks and end to end.
GPU_DEPS := $(if $(PREBUILT),,$(GPU_TESTS) $(BINS))
test-gpu: $(GPU_DEPS)
	@BUILD=$(BUILD) tests/run.sh $(GPU_TESTS)

# The same tests under compute-sanitizer: memcheck for all, racecheck for the kernels with
# shared memory (tests/gpu/sanitize.sh).
test-gpu-sanitize: $(GPU_DEPS)
	@BUILD=$(BUILD) tests/gpu/sanitize.sh $(GPU_TESTS)

# CPU benchmarks: tokenizer vs HF tokenizers, bench-serving on stories15M (bench/bench_cpu.sh)
bench: all
	@BUILD=$(BUILD) bench/bench_cpu.sh

bench-gpu: $(if $(PREBUILT),,$(KBENCHES) $(BINS))
	@for b in $(KBENCHES); do echo "== $$b"; $$b || exit 1; done

setup:
	scripts/setup.sh

clean:
	rm -rf build build-address build-undefined build-thread

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
-include mk/fuzz.mk
