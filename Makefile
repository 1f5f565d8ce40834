# ringlet — io_uring tunnel engine.
#
#   make            build build/ringlet (and the build/inlets-pro link)
#   make deps       install the Debian packages the build and the tests need
#   make test       unit tests (plain and ASan+UBSan), integration tests (plain, ASan+UBSan,
#                   ThreadSanitizer) and the fault matrix (make faults)
#   make demo       server + client + sample upstream on loopback, traffic through it
#   make image      the OCI image build/ringlet-image.oci.tar (no Docker engine: tools/image.py)
#   make fuzz       libFuzzer drivers (clang); FUZZ_SECONDS=N runs each for N seconds
#   make fuzz-campaign  every driver for FUZZ_RUNS (10 million) executions, then llvm-cov
#                   coverage of the grown corpora; the table goes into docs/RELIABILITY.md
#   make soak       SOAK_MINUTES=N (30): one server, two clients, mixed load, clients
#                   restarted; RSS, descriptors and CPU sampled and bounded (tests/soak/)
#   make bench      benchmark harness (see bench/README.md); BENCH_BASE=<rev> adds path
#                   ringlet-base, ringlet built at that git revision
#   make bench-refactor BENCH_BASE=<rev>   ringlet against that revision: bulk,
#                   request/response and churn (scenarios 1-3), direct as the reference
#
#   V=1             print the commands
#   SANITIZE=1      ASan+UBSan build (into build-san/)
#   SANITIZE=thread ThreadSanitizer build, -O1 (into build-tsan/); `make test` runs the
#                   multi-shard integration tests against it (TSAN_TEST_OPTIONS). The units
#                   do not run under TSan (criterion cannot map its arena there)
#   CFLAGS=...      appended to the project's flags

.DELETE_ON_ERROR:
.SECONDARY:
.SUFFIXES:
MAKEFLAGS += --no-builtin-rules

ifeq ($(V),1)
Q :=
msg = @true
else
Q := @
msg = @printf '  %-7s %s\n' $(1) $(2)
endif

CC ?= cc
ifeq ($(origin CC),default)
CC := cc
endif

LLHTTP_SRC := /usr/share/llhttp
LLHTTP_INC := /usr/share/include/llhttp
BSSL_INC   := /usr/include/android
BSSL_LIB   := /usr/lib/x86_64-linux-gnu/android

OPTFLAGS := -O2
ifeq ($(SANITIZE),1)
BUILD ?= build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
else ifeq ($(SANITIZE),thread)
BUILD ?= build-tsan
SANFLAGS := -fsanitize=thread -fno-omit-frame-pointer
OPTFLAGS := -O1
else
BUILD ?= build
SANFLAGS :=
endif

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wpointer-arith -Wvla -Wformat=2
BASEFLAGS := -std=gnu11 $(OPTFLAGS) -g -pthread -D_GNU_SOURCE -fno-strict-aliasing $(SANFLAGS)
CPPFLAGS_ALL := -I. -isystem $(LLHTTP_INC) -isystem $(BSSL_INC) -MMD -MP $(CPPFLAGS)
CFLAGS_ALL := $(BASEFLAGS) $(WARN) $(CFLAGS)
LDFLAGS_ALL := -pthread $(SANFLAGS) -L$(BSSL_LIB) -Wl,-rpath,$(BSSL_LIB) $(LDFLAGS)
# liburing, libbpf (with libelf, libz) and libyaml are linked statically: only the pages
# of them that run are resident (idle RSS; bench/README.md, "Idle memory").
LDLIBS_ALL := -Wl,-Bstatic -luring -lbpf -lelf -lz -lyaml -Wl,-Bdynamic -lssl -lcrypto $(LDLIBS)

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
GIT_SHA := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)

PROTO_SRC  := $(sort $(wildcard proto/*.c))
ENGINE_SRC := $(sort $(wildcard engine/*.c engine/*/*.c))
TOOLS_SRC  := $(filter-out tools/main.c,$(sort $(wildcard tools/*.c)))
EBPF_SRC   := $(filter-out %.bpf.c,$(sort $(wildcard ebpf/*.c)))
# Two archives: the pure wire layer (proto/ + llhttp), and the engine + CLI on top of it.
PROTO_OBJ  := $(PROTO_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/llhttp/llhttp.o \
              $(BUILD)/obj/llhttp/api.o $(BUILD)/obj/llhttp/http.o
PROTO_LIB  := $(BUILD)/libringlet-proto.a
LIB_OBJ    := $(ENGINE_SRC:%.c=$(BUILD)/obj/%.o) $(TOOLS_SRC:%.c=$(BUILD)/obj/%.o) \
              $(EBPF_SRC:%.c=$(BUILD)/obj/%.o)
LIB        := $(BUILD)/libringlet.a

# tests/engine/<layer>/x.c tests engine/<layer>/x.c (the tests mirror the tree).
UNIT_SRC   := $(sort $(wildcard tests/proto/*.c tests/engine/*.c tests/engine/*/*.c \
                tests/tools/*.c tests/ebpf/*.c))
UNIT_BIN   := $(UNIT_SRC:tests/%.c=$(BUILD)/tests/%)

BENCH_SRC  := $(sort $(wildcard bench/*.c))
BENCH_BIN  := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

FUZZ_SRC   := $(sort $(wildcard fuzz/*.c))
FUZZ_BIN   := $(FUZZ_SRC:fuzz/%.c=build-fuzz/%)
FUZZ_SECONDS ?= 10
TEST_FUZZ_SECONDS ?= 5 # each driver's share of `make test`

.PHONY: all deps test units integration faults tsan-integration demo fuzz fuzz-campaign soak bench bench-refactor e2e clean format install check-layers image
all: $(BUILD)/ringlet $(BUILD)/inlets-pro

deps:
	$(Q)sh tools/deps.sh

$(BUILD)/obj/llhttp/%.o: $(LLHTTP_SRC)/%.c
	$(call msg,CC,llhttp/$*.c)
	@mkdir -p $(@D)
	$(Q)$(CC) $(BASEFLAGS) -w -I$(LLHTTP_INC) -c $< -o $@

# The version stamp changes only when the version or the commit does, so version.o is
# rebuilt then and only then.
$(BUILD)/version.stamp: FORCE
	@mkdir -p $(@D)
	@echo '$(VERSION) $(GIT_SHA)' | cmp -s - $@ || echo '$(VERSION) $(GIT_SHA)' >$@
.PHONY: FORCE
FORCE:
$(BUILD)/obj/tools/version.o: $(BUILD)/version.stamp
$(BUILD)/obj/tools/version.o: CPPFLAGS_ALL += -DRINGLET_VERSION='"$(VERSION)"' -DRINGLET_SHA='"$(GIT_SHA)"'
$(BUILD)/obj/%.o: %.c
	$(call msg,CC,$<)
	@mkdir -p $(@D)
	$(Q)$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -c $< -o $@

# BPF programs: clang for the BPF target (with BTF), then a skeleton that embeds the object
# in the loader (ebpf/README.md).
BPFTOOL ?= $(shell command -v bpftool || echo /usr/sbin/bpftool)
BPF_CFLAGS = -g -O2 -target bpf -D__TARGET_ARCH_x86 -Wall -Werror -I$(BUILD)/ebpf -Iebpf
# The kernel's types, from the BTF of the kernel this builds on (CO-RE relocates them to
# the kernel that loads the program).
$(BUILD)/ebpf/vmlinux.h:
	$(call msg,GEN,$@)
	@mkdir -p $(@D)
	$(Q)$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c >$@
$(BUILD)/ebpf/%.bpf.o: ebpf/%.bpf.c ebpf/%.h $(BUILD)/ebpf/vmlinux.h
	$(call msg,BPF,$<)
	@mkdir -p $(@D)
	$(Q)clang $(BPF_CFLAGS) -c $< -o $@
$(BUILD)/ebpf/%.skel.h: $(BUILD)/ebpf/%.bpf.o
	$(call msg,GEN,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name $*_bpf >$@
$(BUILD)/obj/ebpf/loader.o: $(BUILD)/ebpf/sockmap.skel.h
$(BUILD)/obj/ebpf/%.o: CPPFLAGS_ALL += -I$(BUILD)/ebpf

$(PROTO_LIB): $(PROTO_OBJ)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(LIB): $(LIB_OBJ)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/ringlet: $(BUILD)/obj/tools/main.o $(LIB) $(PROTO_LIB)
	$(call msg,LD,$@)
	$(Q)$(CC) $^ $(LDFLAGS_ALL) $(LDLIBS_ALL) -o $@

$(BUILD)/inlets-pro: $(BUILD)/ringlet
	$(Q)ln -sf ringlet $@

$(BUILD)/tests/proto/%: $(BUILD)/obj/tests/proto/%.o $(PROTO_LIB)
	$(call msg,LD,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $^ $(LDFLAGS_ALL) $(LDLIBS_ALL) -lcriterion -o $@

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(LIB) $(PROTO_LIB)
	$(call msg,LD,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $^ $(LDFLAGS_ALL) $(LDLIBS_ALL) -lcriterion -o $@

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(LIB) $(PROTO_LIB)
	$(call msg,LD,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $^ $(LDFLAGS_ALL) $(LDLIBS_ALL) -lm -o $@

# The container image: this build's binary, the libraries it loads, CA certificates, a
# numeric user (tools/image.py). IMAGE_SOURCE sets the source label.
IMAGE := $(BUILD)/ringlet-image.oci.tar
IMAGE_SOURCE ?= $(or $(shell git config --get remote.origin.url 2>/dev/null),unknown)
image: $(IMAGE)
$(IMAGE): $(BUILD)/ringlet tools/image.py LICENSE
	$(Q)python3 tools/image.py --build $(BUILD) --out $@ --version $(VERSION) --revision $(GIT_SHA) \
		--source '$(IMAGE_SOURCE)' --epoch $(shell git log -1 --format=%ct 2>/dev/null || echo 0)

units: $(UNIT_BIN)
	$(Q)sh tests/run-units.sh $(UNIT_BIN)

integration: $(BUILD)/ringlet $(BUILD)/inlets-pro $(BENCH_BIN)
	$(Q)RINGLET_BUILD=$(BUILD) bash tests/run-integration.sh

# The fault matrix (tests/faults/, docs/RELIABILITY.md): kills, stops, ingress reloads,
# upstream and link faults, descriptor limits, bad frames; ONLY=regex selects cases.
faults: $(BUILD)/ringlet $(BUILD)/inlets-pro
	$(Q)RINGLET_BUILD=$(BUILD) bash tests/faults/run.sh

# The data-path tests, and the abuse tests that parse what a peer sends, also run against
# an ASan+UBSan build of the binary.
SAN_INTEGRATION := test_datapath\|test_halfclose\|test_lifecycle\|test_log_limits\|test_pending_fair\|test_proxy\|test_reconnect\|test_resolve\|test_sockmap\|test_strict\|test_tenants

# The multi-shard tests also run against a ThreadSanitizer build, every server and client
# with two shards (several lanes over ws:// and wss://, the upgrade handoff between shards,
# cross-shard data-plane connections, /metrics read across shards, the drain). The harness
# fails a test on any TSan report in its processes' logs (tests/integration/ringlet_test.py);
# halt_on_error stops a process at its first report. To see every race in one run:
#   make test TSAN_TEST_OPTIONS=halt_on_error=0:second_deadlock_stack=1:history_size=7
# history_size=7 keeps enough history that both stacks of a race are printed. With gcc 12's
# TSan and a kernel whose vm.mmap_rnd_bits is above 28, TSan cannot map its shadow memory
# ("unexpected memory mapping"): the step then runs without ASLR (setarch -R).
TSAN_INTEGRATION := test_bulk\|test_datapath\|test_lifecycle\|test_log_limits\|test_manystreams\|test_ops\|test_resolve\|test_tls\|test_tenants
TSAN_TEST_OPTIONS ?= halt_on_error=1:exitcode=66:second_deadlock_stack=1:history_size=7
TSAN_JOBS ?= 2

test: deps
	$(Q)sh tools/check-layers.sh
	$(Q)$(MAKE) --no-print-directory all units $(BENCH_BIN)
	$(Q)$(MAKE) --no-print-directory image
	$(Q)$(MAKE) --no-print-directory SANITIZE=1 all units
	$(Q)$(MAKE) --no-print-directory SANITIZE=thread all
	$(Q)$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(TEST_FUZZ_SECONDS)
	$(Q)$(MAKE) --no-print-directory integration
	$(Q)$(MAKE) --no-print-directory faults
	$(Q)RINGLET_BUILD=build-san ONLY='$(SAN_INTEGRATION)' bash tests/run-integration.sh
	$(Q)$(MAKE) --no-print-directory tsan-integration

# The engine's one-way include rule (docs/DESIGN.md).
check-layers:
	$(Q)sh tools/check-layers.sh

# The ThreadSanitizer step of `make test` alone.
tsan-integration:
	$(Q)$(MAKE) --no-print-directory SANITIZE=thread all
	$(Q)norand=; if build-tsan/ringlet version 2>&1 | grep -q 'unexpected memory mapping'; \
	then norand="setarch $$(uname -m) -R"; echo "  (TSan: running without ASLR)"; fi; \
	TSAN_OPTIONS='$(TSAN_TEST_OPTIONS)' RINGLET_SHARDS=2 JOBS=$(TSAN_JOBS) \
		RINGLET_BUILD=build-tsan ONLY='$(TSAN_INTEGRATION)' $$norand bash tests/run-integration.sh

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)RINGLET_BUILD=$(BUILD) sh tools/demo.sh

bench: deps
	$(Q)$(MAKE) --no-print-directory all $(BENCH_BIN)
	$(Q)RINGLET_BUILD=$(BUILD) sh bench/run.sh

# A refactor's "no speed change": this tree's ringlet against ringlet built at BENCH_BASE, in
# the same run (bench/README.md, "Against a git revision"). BENCH_SCENARIOS and BENCH_PATHS
# still override the selection.
bench-refactor: deps
	$(Q)test -n "$(BENCH_BASE)" || { echo "make bench-refactor: name the revision to compare with, e.g. BENCH_BASE=618094f" >&2; exit 2; }
	$(Q)$(MAKE) --no-print-directory all $(BENCH_BIN)
	$(Q)BENCH_SCENARIOS=$${BENCH_SCENARIOS:-1,2,3} BENCH_PATHS=$${BENCH_PATHS:-direct,ringlet,ringlet-base} \
		RINGLET_BUILD=$(BUILD) sh bench/run.sh

# The seed's scenario at measurement size: make e2e SERIES=100000 (see tests/e2e/README.md).
SERIES ?= 100000
e2e: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)SERIES=$(SERIES) RINGLET_BUILD=$(BUILD) sh tests/e2e/run.sh

# libFuzzer drivers: clang, ASan+UBSan+fuzzer, the proto/ sources and the engine parts a
# driver names in FUZZ_EXTRA_<driver>.
FUZZ_CFLAGS := -std=gnu11 -O1 -g -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
               -fno-sanitize-recover=all -I. -isystem $(LLHTTP_INC) -isystem $(BSSL_INC)
# A driver of an engine part names its sources (and libraries) here.
FUZZ_EXTRA_reasm := engine/mux/reasm.c
FUZZ_EXTRA_tenant := engine/tenant.c engine/tenant_parse.c engine/net.c -lyaml
# One lane of the mux on a shard without a ring (fuzz/lane.c plays the kernel).
FUZZ_EXTRA_lane := $(sort $(wildcard engine/mux/*.c)) engine/loop/shard.c engine/loop/conn.c \
                   engine/loop/bufring.c engine/loop/uring.c engine/xprt/xprt.c engine/tls.c engine/log.c \
                   engine/idmap.c -luring -lssl -pthread
FUZZ_DEPS := $(PROTO_SRC) $(wildcard proto/*.h) $(wildcard engine/mux/*.[ch]) \
             $(wildcard engine/loop/*.[ch] engine/xprt/*.[ch] engine/tls.[ch] engine/log.[ch]) \
             $(wildcard engine/idmap.[ch] engine/tenant*.[ch] engine/net.[ch])
FUZZ_LINK = $< $(FUZZ_EXTRA_$*) $(PROTO_SRC) $(LLHTTP_SRC)/llhttp.c $(LLHTTP_SRC)/api.c \
            $(LLHTTP_SRC)/http.c -L$(BSSL_LIB) -Wl,-rpath,$(BSSL_LIB) -lcrypto -o $@
build-fuzz/%: fuzz/%.c $(FUZZ_DEPS)
	$(call msg,FUZZ,$@)
	@mkdir -p $(@D)
	$(Q)clang $(FUZZ_CFLAGS) $(FUZZ_LINK)

fuzz: $(FUZZ_BIN)
	$(Q)sh fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_BIN)

# The fuzz campaign (docs/RELIABILITY.md, "Fuzz campaign"): every driver in fuzz/, one at a
# time under nice -n 10, for FUZZ_RUNS executions each (FUZZ_JOBS parallel jobs share them),
# its corpus grown in CAMPAIGN_DIR; then the corpora replayed through a clang source-based
# coverage build of each driver (build-fuzz-cov/, no sanitizers) for llvm-cov reports. Prints
# the summary table and writes it into docs/RELIABILITY.md (CAMPAIGN_RECORD= to skip that).
# CAMPAIGN_DRIVERS=a,b runs only those drivers; CAMPAIGN_RESUME=1 does not fuzz again a
# driver whose last run in CAMPAIGN_DIR completed (its recorded figures go in the table).
FUZZ_RUNS ?= 10000000
FUZZ_JOBS ?= 1
CAMPAIGN_DIR ?= build-fuzz/campaign
CAMPAIGN_RECORD ?= docs/RELIABILITY.md
CAMPAIGN_DRIVERS ?=
CAMPAIGN_RESUME ?=
FUZZ_COV_BIN := $(FUZZ_SRC:fuzz/%.c=build-fuzz-cov/%)
FUZZ_COV_CFLAGS := -std=gnu11 -O1 -g -D_GNU_SOURCE -fsanitize=fuzzer -fprofile-instr-generate \
                   -fcoverage-mapping -I. -isystem $(LLHTTP_INC) -isystem $(BSSL_INC)
build-fuzz-cov/%: fuzz/%.c $(FUZZ_DEPS)
	$(call msg,FUZZCOV,$@)
	@mkdir -p $(@D)
	$(Q)clang $(FUZZ_COV_CFLAGS) $(FUZZ_LINK)

fuzz-campaign: $(FUZZ_BIN) $(FUZZ_COV_BIN)
	$(Q)nice -n 10 python3 fuzz/campaign.py --runs $(FUZZ_RUNS) --jobs $(FUZZ_JOBS) \
		--dir $(CAMPAIGN_DIR) --record '$(CAMPAIGN_RECORD)' --only '$(CAMPAIGN_DRIVERS)' \
		$(if $(CAMPAIGN_RESUME),--resume) $(FUZZ_BIN)

# The soak (docs/RELIABILITY.md, "Soak"; tests/soak/soak.py): SOAK_MINUTES of mixed load
# through one server and two clients, under nice -n SOAK_NICE; results in $(BUILD)/soak/<time>/.
SOAK_MINUTES ?= 30
SOAK_NICE ?= 5
soak: all
	$(Q)RINGLET_BUILD=$(BUILD) nice -n $(SOAK_NICE) python3 tests/soak/soak.py --minutes $(SOAK_MINUTES)

PREFIX ?= /usr/local
DOCDIR := $(DESTDIR)$(PREFIX)/share/doc/ringlet
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DOCDIR)
	install -m 0755 $(BUILD)/ringlet $(DESTDIR)$(PREFIX)/bin/ringlet
	ln -sf ringlet $(DESTDIR)$(PREFIX)/bin/inlets-pro
	install -m 0644 README.md docs/PROTOCOL.md docs/DESIGN.md LICENSE $(DOCDIR)/
	install -m 0644 ebpf/README.md $(DOCDIR)/SOCKMAP.md
	for c in "" "tcp server" "tcp client" status; do \
		$(BUILD)/ringlet $$c --help >"$(DOCDIR)/help-$$(echo $${c:-ringlet} | tr ' ' -).txt"; \
	done

format:
	clang-format -i $(wildcard proto/*.[ch] engine/*.[ch] engine/*/*.[ch] tools/*.[ch] ebpf/*.[ch] bench/*.[ch] \
		tests/*/*.c tests/engine/*/*.c fuzz/*.c)

clean:
	rm -rf build build-san build-tsan build-fuzz build-fuzz-cov

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
