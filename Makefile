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
	$(B)/tests/libplugin.so $(B)/examples/demo_app $(B)/tests/static_hello
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

$(B)/collector/main.o: VERSION
$(B)/collector/main.o: BASE_CFLAGS += -DMEMPROF_VERSION='"$(VERSION)"'

$(B)/memprof-collector: $(COLL_OBJ)
	$(call say,LD,$@)
	$(Q)$(CC) -o $@ $^ $(COLL_LIBS)

# ---- test programs and unit tests ------------------------------------------
$(B)/tests/libplugin.so: tests/c/plugin.c
	$(call say,CC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(BASE_CFLAGS) $(TARGET_CFLAGS) -fPIC -shared -o $@ $<

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

# ---- dependencies, tests, demo ---------------------------------------------
deps:
	@scripts/install-deps

unit: all units
	@set -e; for t in $(UNITS); do echo "  UNIT     $$t"; $$t; done

test: deps
	@$(MAKE) --no-print-directory all targets units
	@$(MAKE) --no-print-directory unit
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

.PHONY: all deps test unit units targets stress demo bench install clean

-include $(shell find $(B) -name '*.d' 2>/dev/null)
