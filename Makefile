# matchlock - see README.md. Targets: all, test, unit, fuzz-run, fuzz-long, e2e, asan, bench, install, clean.
PREFIX  ?= /usr/local
VERSION ?= 0.1.0
COMMIT  := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
BUILT   := $(shell date -u +%Y-%m-%dT%H:%M:%SZ)

CC      ?= gcc
CFLAGS  ?= -O2 -g
override CFLAGS += -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -I. -fstack-protector-strong
PKGS    := jansson libarchive ext2fs com_err gnutls sqlite3 zlib libcurl slirp glib-2.0 libnghttp2
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
# libhttp-parser-dev ships no .pc file: the intercepting proxy's HTTP/1 parser (mitm/h1.c)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS)) -lhttp_parser -lm -lpthread

B        := build
DATA     := $(B)/lib/matchlock
LIB_SRCS := $(wildcard base/*.c vmm/*.c oci/*.c ext4/*.c disk/*.c rpc/*.c dnswire/*.c slirpnet/*.c mitm/*.c vfs/*.c) agent/proto.c $(filter-out cli/main.c,$(wildcard cli/*.c))
LIB_OBJS := $(LIB_SRCS:%.c=$(B)/obj/%.o)
AGENT_SRCS := $(filter-out agent/proto.c,$(wildcard agent/*.c)) agent/proto.c base/err.c base/log.c
AGENT_OBJS := $(AGENT_SRCS:%.c=$(B)/agent-obj/%.o)
UNIT_SRCS  := $(wildcard tests/unit/*.c)
UNIT_BINS  := $(UNIT_SRCS:tests/unit/%.c=$(B)/tests/%)
FUZZ_SRCS  := $(wildcard tests/fuzz/*.c)
FUZZ_BINS  := $(FUZZ_SRCS:tests/fuzz/%.c=$(B)/fuzz/%)
TOOL_SRCS  := $(wildcard tests/tools/*.c)
TOOL_BINS  := $(TOOL_SRCS:tests/tools/%.c=$(B)/tests/tools/%)

.PHONY: all setup test unit fuzz fuzz-run fuzz-long e2e asan bench install uninstall clean
all: $(B)/bin/matchlock $(DATA)/agent $(DATA)/images/default.tar $(TOOL_BINS)

setup:
	sh scripts/setup.sh

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -MMD -MP -c $< -o $@

$(B)/libmatchlock.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(B)/bin/matchlock: cli/main.c $(B)/libmatchlock.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -DML_VERSION='"$(VERSION)"' -DML_COMMIT='"$(COMMIT)"' \
	  -DML_BUILT='"$(BUILT)"' $< $(B)/libmatchlock.a $(PKG_LIBS) -o $@

# The guest agent is PID 1 of every VM: static, no NSS, libseccomp linked in.
$(B)/agent-obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DML_AGENT -MMD -MP -c $< -o $@

$(DATA)/agent: $(AGENT_OBJS)
	@mkdir -p $(dir $@)
	$(CC) -static $(CFLAGS) $^ -l:libseccomp.a -o $@

$(DATA)/images/default.tar: scripts/mkdefaultimage.sh
	@mkdir -p $(dir $@)
	sh scripts/mkdefaultimage.sh $@

$(B)/tests/tools/%: tests/tools/%.c tests/common/process_init.c $(B)/libmatchlock.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $< tests/common/process_init.c $(B)/libmatchlock.a $(PKG_LIBS) -o $@

$(B)/tests/%: tests/unit/%.c tests/common/process_init.c $(B)/libmatchlock.a $(wildcard tests/unit/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $< tests/common/process_init.c $(B)/libmatchlock.a $(PKG_LIBS) -lcmocka -o $@

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

# libFuzzer targets, built with clang + ASan/UBSan. The library is compiled once for them
# (instrumented, without libFuzzer's main) and each target links against it.
FUZZ_CFLAGS := -std=gnu11 -g -O1 -D_GNU_SOURCE -I. -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_OBJ_CFLAGS := $(subst -fsanitize=fuzzer,-fsanitize=fuzzer-no-link,$(FUZZ_CFLAGS))
# Without cli/: no target fuzzes it, and its files need main.c's symbols (cli_settings).
FUZZ_LIB_SRCS := $(filter-out cli/%,$(LIB_SRCS)) tests/common/process_init.c
FUZZ_LIB_OBJS := $(FUZZ_LIB_SRCS:%.c=$(B)/fuzz-obj/%.o)
$(B)/fuzz-obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_OBJ_CFLAGS) $(PKG_CFLAGS) -MMD -MP -c $< -o $@
$(B)/libfuzz.a: $(FUZZ_LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^
# process_init.o is linked whole: nothing refers to its constructor, so the archive would skip it
$(B)/fuzz/%: tests/fuzz/%.c $(B)/libfuzz.a
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $(PKG_CFLAGS) $< $(B)/fuzz-obj/tests/common/process_init.o $(B)/libfuzz.a $(PKG_LIBS) -o $@
fuzz: $(FUZZ_BINS)
FUZZ_SECONDS ?= 20
fuzz-run:
	$(MAKE) -j2 fuzz
	sh tests/run-fuzz.sh $(FUZZ_SECONDS) $(FUZZ_BINS)
# Not part of `make test`: every target for FUZZ_RUNS executions, one after another (hours;
# run it as `nice -n 19 make fuzz-long`). Each target's line gives its count and time.
FUZZ_RUNS ?= 10000000
fuzz-long: $(FUZZ_BINS)
	sh tests/run-fuzz.sh --runs $(FUZZ_RUNS) $(FUZZ_BINS)

e2e: all
	sh tests/run-e2e.sh

test: all unit fuzz-run e2e

# ASan+UBSan build of the library, unit tests and fuzz targets.
asan:
	$(MAKE) B=build-asan CC=clang CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -Wno-unused-command-line-argument" unit
	$(MAKE) B=build-asan FUZZ_SECONDS=10 fuzz-run

bench: all
	bash bench/run.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/matchlock
	install -m 0755 $(B)/bin/matchlock $(DESTDIR)$(PREFIX)/bin/matchlock
	rm -rf $(DESTDIR)$(PREFIX)/lib/matchlock.new
	cp -a $(DATA) $(DESTDIR)$(PREFIX)/lib/matchlock.new
	chmod -R a+rX,go-w $(DESTDIR)$(PREFIX)/lib/matchlock.new
	rm -rf $(DESTDIR)$(PREFIX)/lib/matchlock && mv $(DESTDIR)$(PREFIX)/lib/matchlock.new $(DESTDIR)$(PREFIX)/lib/matchlock

uninstall:
	rm -rf $(DESTDIR)$(PREFIX)/bin/matchlock $(DESTDIR)$(PREFIX)/lib/matchlock

clean:
	rm -rf $(B)/obj $(B)/agent-obj $(B)/fuzz-obj $(B)/bin $(B)/tests $(B)/fuzz $(B)/libmatchlock.a $(B)/libfuzz.a build-asan

-include $(shell find $(B)/obj $(B)/agent-obj $(B)/fuzz-obj -name '*.d' 2>/dev/null)
