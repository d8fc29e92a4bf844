# mk/fuzz.mk - libFuzzer targets (tests/fuzz/fuzz_*.c) under ASan + UBSan; included by the
# root Makefile. Needs clang with its libFuzzer runtime (Debian: clang, libclang-rt-14-dev);
# without them the rules say so and build nothing.
#
#   make fuzz [FUZZ_SECONDS=60]  builds, then runs every target FUZZ_SECONDS seconds
#                                (scripts/fuzz.sh; crashes land in build-fuzz/artifacts/)
#   make fuzz-build              builds build-fuzz/fuzz_* only
#
# The tokenizer, tokenizer library and common sources are compiled again with coverage instrumentation into
# build-fuzz/obj (apart from the normal build); each target links them with libFuzzer.

FUZZ_CC      ?= clang
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_HAVE_CC := $(shell command -v $(FUZZ_CC) 2>/dev/null)
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS  := -O1 -g -std=gnu11 -Wall -Wextra -Wno-unused-parameter -pthread -MMD -MP \
                -fno-strict-aliasing -D_GNU_SOURCE $(FUZZ_SAN)
FUZZ_SRCS    := $(call lib_srcs,tokenizer) $(call lib_srcs,common/tok) $(call lib_srcs,common)
FUZZ_OBJS    := $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(FUZZ_SRCS))
FUZZ_LIB     := $(FUZZ_BUILD)/lib/libcinder_fuzz.a
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,$(FUZZ_BUILD)/%,$(wildcard tests/fuzz/fuzz_*.c))

.PHONY: fuzz fuzz-build fuzz-clean

fuzz:
	@FUZZ_CC=$(FUZZ_CC) FUZZ_BUILD=$(FUZZ_BUILD) scripts/fuzz.sh $(FUZZ_SECONDS)

ifeq ($(FUZZ_HAVE_CC),)
fuzz-build:
	@echo "fuzz: $(FUZZ_CC) not found; install clang and libclang-rt-14-dev to build the fuzz targets"
else
fuzz-build: $(FUZZ_TARGETS)
endif

$(FUZZ_BUILD)/.flags: FORCE
	@mkdir -p $(FUZZ_BUILD)
	@echo '$(FUZZ_CC) $(FUZZ_CFLAGS)' | cmp -s - $@ || echo '$(FUZZ_CC) $(FUZZ_CFLAGS)' > $@

# library code: coverage-instrumented, no libFuzzer main
$(FUZZ_BUILD)/obj/%.o: %.c $(FUZZ_BUILD)/.flags
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_LIB): $(FUZZ_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB) $(FUZZ_BUILD)/.flags
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(FUZZ_LIB) $(LDLIBS) -o $@

fuzz-clean:
	rm -rf $(FUZZ_BUILD)
clean: fuzz-clean

-include $(shell find $(FUZZ_BUILD) -name '*.d' 2>/dev/null)
