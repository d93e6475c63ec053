# memprof: libmemprof.so (the preloaded shim), memprof-collector, tests.
#
# Variables you may set on the command line:
#   CFLAGS   optimisation and debug flags for our own code (default -O2 -g)
#   PREFIX   install prefix (default /usr/local); DESTDIR a staging root
#   V=1      print every command instead of a one-line summary
#
# Fixed flags, and why:
#   WARN         warnings: the build must stay free of them
#   SHIM_CFLAGS  the shim lives inside other programs: position independent,
#                hidden by default (only shim/exports.map is exported), and
#                initial-exec TLS so a thread's first malloc allocates nothing
#   TARGET_CFLAGS  test programs keep frame pointers and debug info, so the
#                profiles they produce have file:line to check against

CC ?= cc
CXX ?= c++
CFLAGS ?= -O2 -g
PREFIX ?= /usr/local
DESTDIR ?=

WARN := -Wall -Wextra -Wstrict-prototypes -Wno-missing-field-initializers
BASE_CFLAGS := -std=gnu11 $(WARN) -D_GNU_SOURCE -Iinclude -MMD -MP
SHIM_CFLAGS := -fPIC -fvisibility=hidden -ftls-model=initial-exec -fno-strict-aliasing
TARGET_CFLAGS := -g -O1 -fno-omit-frame-pointer -fno-inline-functions-called-once -pthread

B := build
GEN := $(B)/gen

# The one place the version is kept: the collector's --version, the front
# end (which reads it beside itself, or has it written in by install).
VERSION := $(shell cat VERSION)

ifeq ($(V),1)
Q :=
say = @true
else
Q := @
say = @printf '  %-8s %s\n' $(1) $(2)
endif

SHIM_SRC := $(wildcard shim/*.c)
SHIM_OBJ := $(SHIM_SRC:%.c=$(B)/%.o)
COLL_SRC := $(wildcard collector/*.c)
COLL_OBJ := $(COLL_SRC:%.c=$(B)/%.o) $(GEN)/profile.pb-c.o $(B)/collector/ui_assets.o
# The page at /debug/pprof/ui/ and the library it is built on (ui/vendor,
# refreshed by scripts/update-ui-vendor), embedded in the collector.
UI_ASSETS := $(wildcard ui/*.html ui/*.js ui/*.css ui/vendor/*)
COLL_LIBS := -lprotobuf-c -lz -ldw -lelf -l:libiberty.a -lm

# The shim links nothing but libc (and libm): every library it calls runs
# inside the program, with the program's descriptors and signals.
SHIM_LIBS := -ldl -lpthread -lm

TARGET_C := $(wildcard tests/c/target_*.c)
TARGET_CXX := $(wildcard tests/c/target_*.cpp)
TARGETS := $(TARGET_C:tests/c/%.c=$(B)/tests/%) $(TARGET_CXX:tests/c/%.cpp=$(B)/tests/%) \
	$(B)/tests/libplugin.so $(B)/tests/libmallinfo_count.so $(B)/tests/libguarded_alloc.so \
	$(B)/examples/demo_app \
	$(B)/tests/static_hello $(B)/tests/probe_client
UNIT_SRC := $(wildcard tests/c/unit_*.c)
UNITS := $(UNIT_SRC:tests/c/%.c=$(B)/tests/%)

all: $(B)/libmemprof.so $(B)/memprof-collector

# ---- the shim -------------------------------------------------------------
$(B)/shim/%.o: shim/%.c
	$(call say,CC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(BASE_CFLAGS) $(SHIM_CFLAGS) $(CFLAGS) -c -o $@ $<

$(B)/libmemprof.so: $(SHIM_OBJ) shim/exports.map
	$(call say,LD,$@)
	$(Q)$(CC) -shared -fPIC -Wl,--version-script=shim/exports.map -Wl,-z,nodelete -Wl,--no-undefined \
		-Wl,-z,now -o $@ $(SHIM_OBJ) $(SHIM_LIBS)

# ---- the collector --------------------------------------------------------
$(GEN)/profile.pb-c.c $(GEN)/profile.pb-c.h: proto/profile.proto
	$(call say,PROTOC,$<)
	@mkdir -p $(GEN)
	$(Q)protoc-c --c_out=$(GEN) -Iproto $<

$(GEN)/profile.pb-c.o: $(GEN)/profile.pb-c.c
	$(call say,CC,$@)
	$(Q)$(CC) $(CFLAGS) -I$(GEN) -c -o $@ $<

$(B)/collector/%.o: collector/%.c $(GEN)/profile.pb-c.h
	$(call say,CC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(BASE_CFLAGS) -I$(GEN) $(CFLAGS) -c -o $@ $<

$(B)/collector/ui_assets.o: collector/ui_assets.S $(UI_ASSETS)
	$(call say,AS,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) -c -o $@ $<

$(B)/collector/options.o: VERSION
$(B)/collector/options.o: BASE_CFLAGS += -DMEMPROF_VERSION='"$(VERSION)"'

$(B)/memprof-collector: $(COLL_OBJ)
	$(call say,LD,$@)
	$(Q)$(CC) -o $@ $^ $(COLL_LIBS)

# ---- test programs and unit tests ------------------------------------------
$(B)/tests/libplugin.so: tests/c/plugin.c
	$(call say,CC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(BASE_CFLAGS) $(TARGET_CFLAGS) -fPIC -shared -o $@ $<

$(B)/tests/libguarded_alloc.so: tests/c/guarded_alloc.c
	$(call say,CC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(BASE_CFLAGS) $(TARGET_CFLAGS) -fPIC -shared -o $@ $<

$(B)/tests/libmallinfo_count.so: tests/c/mallinfo_count.c
	$(call say,CC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(BASE_CFLAGS) $(TARGET_CFLAGS) -fPIC -shared -o $@ $< -ldl

$(B)/examples/%: examples/%.c
	$(call say,CC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(BASE_CFLAGS) $(TARGET_CFLAGS) -o $@ $<

# A program memprof cannot enter: nothing is preloaded into a static one.
# (Debian's libc6-dev provides libc.a.)
$(B)/tests/static_hello: tests/c/static_hello.c
	$(call say,CC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(BASE_CFLAGS) -static -o $@ $<

# A client of the collector without the shim, for the hardening tests.
$(B)/tests/probe_client: tests/c/probe_client.c include/memprof_wire.h
	$(call say,CC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(BASE_CFLAGS) $(TARGET_CFLAGS) -o $@ $<

$(B)/tests/target_%: tests/c/target_%.c
	$(call say,CC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(BASE_CFLAGS) $(TARGET_CFLAGS) -o $@ $< -ldl -lm

$(B)/examples/%: examples/%.c
	$(call say,CC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(BASE_CFLAGS) $(TARGET_CFLAGS) -o $@ $<

$(B)/tests/target_%: tests/c/target_%.cpp
	$(call say,CXX,$@)
	@mkdir -p $(@D)
	$(Q)$(CXX) -std=gnu++17 $(filter-out -Wstrict-prototypes,$(WARN)) -MMD -MP \
		$(TARGET_CFLAGS) -o $@ $< -ldl

$(B)/tests/libfixture_cxx.so: tests/c/fixture_cxx.cpp
	$(call say,CXX,$@)
	@mkdir -p $(@D)
	$(Q)$(CXX) -g -O2 -fPIC -shared -o $@ $<

# Unit tests link the collector's or shim's objects they test (all but main).
UNIT_COLL_OBJ := $(filter-out $(B)/collector/main.o,$(COLL_OBJ))
$(B)/tests/unit_%: tests/c/unit_%.c $(UNIT_COLL_OBJ) $(B)/tests/libfixture_cxx.so
	$(call say,CC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(BASE_CFLAGS) -Icollector -Ishim -I$(GEN) -Itests/c -g -O1 -o $@ $< \
		$(UNIT_COLL_OBJ) $(COLL_LIBS) -ldl -lpthread

# The shim's unwinder is held to glibc's backtrace() on its own.
$(B)/tests/unit_unwind: tests/c/unit_unwind.c $(B)/shim/unwind.o
	$(call say,CC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(BASE_CFLAGS) -Ishim -Itests/c -g -O1 -o $@ $< $(B)/shim/unwind.o -lpthread

targets: $(TARGETS)
units: $(UNITS)

# ---- fuzzing and sanitizers -------------------------------------------------
# The collector's objects again, built by clang with libFuzzer's coverage
# and ASan + UBSan (build/fuzz/), linked into the harnesses in tests/fuzz/;
# and built by clang with ASan + UBSan (build/asan/) into a collector and
# the unit tests, which make asan runs with the collector-side tests.
FUZZ_CC := clang
# clang for make asan's collector too: its runtime has ASan and UBSan in
# one, which both take their options from tests/asan/options.c (GCC's
# UBSan does not), so a private collector's reports reach the log.
SAN_CC := clang
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_SECONDS ?= 60
FB := $(B)/fuzz
# The page's assets are data, the same in every build: the plain object.
FUZZ_COLL_OBJ := $(filter-out $(FB)/collector/main.o,$(COLL_SRC:%.c=$(FB)/%.o)) $(FB)/gen/profile.pb-c.o \
	$(B)/collector/ui_assets.o
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZERS := $(FUZZ_SRC:tests/fuzz/%.c=$(FB)/%)

$(FB)/collector/%.o: collector/%.c $(GEN)/profile.pb-c.h
	$(call say,FUZZCC,$@)
	@mkdir -p $(@D)
	$(Q)$(FUZZ_CC) $(BASE_CFLAGS) -I$(GEN) -O1 -g -fsanitize=fuzzer-no-link $(SAN_FLAGS) -c -o $@ $<

$(FB)/gen/profile.pb-c.o: $(GEN)/profile.pb-c.c
	$(call say,FUZZCC,$@)
	@mkdir -p $(@D)
	$(Q)$(FUZZ_CC) -O1 -g -I$(GEN) $(SAN_FLAGS) -c -o $@ $<

$(FB)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_COLL_OBJ)
	$(call say,FUZZLD,$@)
	$(Q)$(FUZZ_CC) $(BASE_CFLAGS) -Icollector -I$(GEN) -O1 -g -fsanitize=fuzzer $(SAN_FLAGS) \
		-o $@ $< $(FUZZ_COLL_OBJ) $(COLL_LIBS) -lpthread

fuzzers: $(FUZZERS)

# Each harness for FUZZ_SECONDS, from the seeds in tests/fuzz/corpus/.
fuzz: $(FUZZERS)
	@FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run $(FUZZERS)

AB := $(B)/asan
ASAN_COLL_OBJ := $(COLL_SRC:%.c=$(AB)/%.o) $(AB)/gen/profile.pb-c.o $(B)/collector/ui_assets.o
ASAN_UNITS := $(UNIT_SRC:tests/c/%.c=$(AB)/tests/%)

$(AB)/collector/%.o: collector/%.c $(GEN)/profile.pb-c.h
	$(call say,ASANCC,$@)
	@mkdir -p $(@D)
	$(Q)$(SAN_CC) $(BASE_CFLAGS) -I$(GEN) -O1 -g $(SAN_FLAGS) -c -o $@ $<


$(AB)/gen/profile.pb-c.o: $(GEN)/profile.pb-c.c
	$(call say,ASANCC,$@)
	@mkdir -p $(@D)
	$(Q)$(SAN_CC) -O1 -g -I$(GEN) $(SAN_FLAGS) -c -o $@ $<

$(AB)/options.o: tests/asan/options.c
	$(call say,ASANCC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(BASE_CFLAGS) -DASAN_LOG='"$(abspath $(AB))/log"' -c -o $@ $<

$(AB)/memprof-collector: $(ASAN_COLL_OBJ) $(AB)/options.o
	$(call say,ASANLD,$@)
	$(Q)$(SAN_CC) $(SAN_FLAGS) -o $@ $^ $(COLL_LIBS)

# The unit tests are built by $(CC) (GCC), with objects of their own
# (build/asan/gcc/): unit_symbolize checks the line tables GCC writes for
# it. GCC's UBSan reports go to stderr (and stop the test); ASan's to the log.
AGB := $(AB)/gcc
ASAN_UNIT_COLL_OBJ := $(filter-out $(AGB)/collector/main.o,$(COLL_SRC:%.c=$(AGB)/%.o)) \
	$(AGB)/gen/profile.pb-c.o $(B)/collector/ui_assets.o

$(AGB)/collector/%.o: collector/%.c $(GEN)/profile.pb-c.h
	$(call say,ASANCC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(BASE_CFLAGS) -I$(GEN) -O1 -g $(SAN_FLAGS) -c -o $@ $<

$(AGB)/shim/%.o: shim/%.c
	$(call say,ASANCC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(BASE_CFLAGS) $(SHIM_CFLAGS) -O1 -g $(SAN_FLAGS) -c -o $@ $<

$(AGB)/gen/profile.pb-c.o: $(GEN)/profile.pb-c.c
	$(call say,ASANCC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) -O1 -g -I$(GEN) $(SAN_FLAGS) -c -o $@ $<

$(AB)/tests/unit_%: tests/c/unit_%.c $(ASAN_UNIT_COLL_OBJ) $(AB)/options.o $(AB)/tests/libfixture_cxx.so
	$(call say,ASANLD,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(BASE_CFLAGS) -Icollector -Ishim -I$(GEN) -Itests/c -g -O1 $(SAN_FLAGS) -o $@ $< \
		$(ASAN_UNIT_COLL_OBJ) $(AB)/options.o $(COLL_LIBS) -ldl -lpthread

$(AB)/tests/unit_unwind: tests/c/unit_unwind.c $(AGB)/shim/unwind.o $(AB)/options.o
	$(call say,ASANLD,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(BASE_CFLAGS) -Ishim -Itests/c -g -O1 $(SAN_FLAGS) -o $@ $< $(AGB)/shim/unwind.o \
		$(AB)/options.o -lpthread

$(AB)/tests/libfixture_cxx.so: $(B)/tests/libfixture_cxx.so
	@mkdir -p $(@D)
	$(Q)cp $< $@

# Not intermediate: make would delete them after each link.
.SECONDARY: $(FUZZ_COLL_OBJ) $(ASAN_COLL_OBJ) $(ASAN_UNIT_COLL_OBJ) $(AGB)/shim/unwind.o

# The unit tests, then the end-to-end tests of the collector's side
# (ASAN_BATS) with this collector; any report of either sanitizer (they
# write to build/asan/log.PID, tests/asan/options.c) fails it.
ASAN_BATS ?= tests/bats/robust.bats tests/bats/http.bats tests/bats/leak.bats \
	tests/bats/heap.bats tests/bats/cpu.bats
asan: all targets units $(AB)/memprof-collector $(ASAN_UNITS)
	@tests/asan/run $(AB) "$(ASAN_UNITS)" $(ASAN_BATS)

# options.c prints the version, in the fuzzing and sanitizer builds too.
$(FB)/collector/options.o $(AB)/collector/options.o $(AGB)/collector/options.o: VERSION
$(FB)/collector/options.o $(AB)/collector/options.o $(AGB)/collector/options.o: \
	BASE_CFLAGS += -DMEMPROF_VERSION='"$(VERSION)"'

# ---- dependencies, tests, demo ---------------------------------------------
deps:
	@scripts/install-deps

unit: all units
	@set -e; for t in $(UNITS); do echo "  UNIT     $$t"; $$t; done

test: deps
	@$(MAKE) --no-print-directory all targets units fuzzers
	@$(MAKE) --no-print-directory unit
	@FUZZ_SECONDS=20 tests/fuzz/run $(FUZZERS)
	bats tests/bats

# Long soaks and many-repetition runs (tests/stress/), about half an hour.
stress: deps
	@$(MAKE) --no-print-directory all targets
	bats tests/stress

demo: deps
	@$(MAKE) --no-print-directory all targets
	@scripts/demo

bench: deps
	@$(MAKE) --no-print-directory all targets
	@bench/run
	@bench/realprog

# ---- install ---------------------------------------------------------------
install: all
	install -d $(DESTDIR)$(PREFIX)/lib/memprof $(DESTDIR)$(PREFIX)/bin
	install -m 0644 $(B)/libmemprof.so $(DESTDIR)$(PREFIX)/lib/memprof/libmemprof.so
	install -m 0755 $(B)/memprof-collector $(DESTDIR)$(PREFIX)/lib/memprof/memprof-collector
	sed -e 's|^MEMPROF_LIBDIR=.*|MEMPROF_LIBDIR=$(PREFIX)/lib/memprof|' \
		-e 's|^MEMPROF_VERSION=.*|MEMPROF_VERSION=$(VERSION)|' scripts/memprof \
		> $(DESTDIR)$(PREFIX)/bin/memprof
	chmod 0755 $(DESTDIR)$(PREFIX)/bin/memprof

clean:
	rm -rf $(B)

.PHONY: all deps test unit units targets stress demo bench install clean fuzz fuzzers asan

-include $(shell find $(B) -name '*.d' 2>/dev/null)
