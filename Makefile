# pg_poolguard — built with PGXS.  `make && make install` builds and installs the extension;
# `make test` runs every test on throwaway clusters, `make test-all` on every tested PostgreSQL
# major; `make demo` shows it working.

EXTENSION  = pg_poolguard
MODULE_big = pg_poolguard
# The one version number of a release, set here only.  The objects that report it get it as
# -DPOOLGUARD_EXTVERSION (VERSIONED_OBJS below, src/pg/version.h); the control file's
# default_version, META.json, debian/changelog and clients/node/package.json state it too and are
# checked against it (scripts/check_release.py, run by make test and make dist).
EXTVERSION = 1.2

# One folder per feature under src/ (docs/architecture.md); src/core/<feature>/ is plain C++.
CORE_SRCS  = $(sort $(wildcard src/core/*/*.cpp))
GLUE_SRCS  = $(sort $(wildcard src/*.cpp) $(filter-out src/core/%,$(wildcard src/*/*.cpp)))
OBJS       = $(GLUE_SRCS:.cpp=.o) $(CORE_SRCS:.cpp=.o)

# The full install script of the current version is assembled from one fragment per feature
# (extension/), in this order.  versions/ holds what was released, never edited again: the 1.0
# install script and one upgrade step per release (test/t/080_release_upgrade.pl: 1.0 + every step
# = a fresh install).
DATA_built = pg_poolguard--$(EXTVERSION).sql
SQL_PARTS  = $(addprefix extension/,base.sql policy.sql enforce.sql reaper.sql caps.sql invalidation.sql stats.sql \
                                   metrics.sql worker.sql)
DATA       = $(sort $(wildcard versions/pg_poolguard--*.sql))

# make installcheck: pg_regress (the tests test/sql/schedule lists: test/sql/NAME.sql,
# test/expected/NAME.out, in its order; see installcheck-regress below — REGRESS stays empty, also
# against the environment, so that PGXS runs no list of its own) and then pg_isolation_regress
# (every test/specs/NAME.spec).  Each starts its own temporary instance (--temp-instance) from the
# installed binaries and extension (make install first) with test/regress.conf (--temp-config:
# the library preloaded, its worker on contrib_regression, the database both run in), as pg_cron
# and pg_duckdb do: nothing needs to be running.  Run it as a user that may run initdb (not root).
REGRESS_CONF     = test/regress.conf
REGRESS_SCHEDULE = test/sql/schedule
REGRESS          =
REGRESS_OPTS     = --inputdir=test --temp-instance=tmp_check_regress --temp-config=$(REGRESS_CONF)
CONTRIB_TESTDB   = contrib_regression

ISOLATION      = $(sort $(notdir $(basename $(wildcard test/specs/*.spec))))
ISOLATION_OPTS = --inputdir=test --load-extension=pg_poolguard --temp-instance=tmp_check_iso --temp-config=$(REGRESS_CONF)

# make prove_installcheck: the TAP tests (each starts its own clusters); PROVE_TESTS=test/t/NNN_x.pl
# picks some.  TAP_TESTS stays unset so that installcheck does not run them too.
PROVE_TESTS = $(sort $(wildcard test/t/*.pl))

PG_CPPFLAGS = -Isrc
PG_CXXFLAGS = -std=c++17 -Wno-register -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
# Track header dependencies (PGXS does not for extensions): a changed header rebuilds its users.
PG_CXXFLAGS += -MMD -MP
SHLIB_LINK += -lstdc++

# Debian's PGXS would also compile every .cpp to LLVM bitcode with clang, ignoring our flags.
override with_llvm = no

EXTRA_CLEAN = build $(OBJS:.o=.d) output_iso results regression.diffs regression.out dist tmp_check tmp_check_regress tmp_check_iso

PG_CONFIG ?= pg_config
PGXS := $(wildcard $(shell $(PG_CONFIG) --pgxs 2>/dev/null))
ifneq ($(PGXS),)
include $(PGXS)
else
# No server development files yet: `make test` / `make demo` install them (as root) first.
all install installcheck prove_installcheck tap:
	@echo "PGXS not found: install postgresql-server-dev-15 (make deps or make test does it, as root)" >&2
	@exit 1
endif

-include $(OBJS:.o=.d)

# The objects that report the version (src/pg/version.h); rebuilt when the Makefile changes.
VERSIONED_OBJS = src/pg_poolguard.o src/pg/sql_version.o
$(VERSIONED_OBJS): override CPPFLAGS += -DPOOLGUARD_EXTVERSION='"$(EXTVERSION)"'
$(VERSIONED_OBJS): Makefile

$(DATA_built): $(SQL_PARTS)
	cat $^ > $@

# PGXS runs pg_regress only for a REGRESS list; ours runs a schedule, before the isolation tests
# PGXS's installcheck runs.  The isolation tests run in contrib_regression too (the database
# test/regress.conf gives the worker): PGXS appends --dbname=$(ISOLATION_TESTDB) after our options.
ifneq ($(PGXS),)
ISOLATION_TESTDB = $(CONTRIB_TESTDB)
installcheck: installcheck-regress
installcheck-regress: not-root
	$(pg_regress_installcheck) $(REGRESS_OPTS) --dbname=$(CONTRIB_TESTDB) --schedule=$(REGRESS_SCHEDULE)

prove_installcheck: not-root
	$(prove_installcheck)

# PostgreSQL refuses to run as root: say so before initdb does.
not-root:
	@if [ "$$(id -u)" = 0 ]; then \
	    echo "make installcheck / prove_installcheck start PostgreSQL, which refuses root: run them as" \
	         "another user, e.g. su postgres -c 'make installcheck' from a tree it may write" \
	         "(make test does that by itself)" >&2; exit 1; fi
endif

# ---- release: version agreement, PGXN metadata, the source archive, Debian packages ----
# The archive holds what git tracks at HEAD minus what .gitattributes marks export-ignore.
DISTVERSION = $(EXTVERSION).0
DISTNAME    = $(EXTENSION)-$(DISTVERSION)
DISTDIR    ?= dist

check-release:
	python3 scripts/check_release.py
	python3 scripts/validate_meta.py META.json

# The PGXN release archive: pg_poolguard-X.Y.Z.zip (PGXN names distributions by SemVer).
dist: check-release
	@mkdir -p $(DISTDIR)
	git archive --format=zip --prefix=$(DISTNAME)/ -o $(DISTDIR)/$(DISTNAME).zip HEAD
	python3 scripts/check_dist.py $(DISTDIR)/$(DISTNAME).zip

# Debian packages postgresql-N-poolguard in $(DISTDIR)/deb (scripts/build_deb.sh).
deb:
	bash scripts/build_deb.sh $(DISTDIR)/deb

# ---- unit tests of the pure C++ core (GoogleTest), plain and under ASan+UBSan ----
UNIT_SRCS   = $(sort $(wildcard test/unit/*.cpp))
UNIT_FLAGS  = -std=c++17 -Wall -Wextra -Werror -g -Isrc
SAN_FLAGS   = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

build/unit_tests: $(UNIT_SRCS) $(CORE_SRCS) $(wildcard src/core/*.h src/core/*/*.h)
	@mkdir -p build
	$(CXX) $(UNIT_FLAGS) -O1 -o $@ $(UNIT_SRCS) $(CORE_SRCS) -lgtest -lgtest_main -pthread

build/unit_tests_sanitized: $(UNIT_SRCS) $(CORE_SRCS) $(wildcard src/core/*.h src/core/*/*.h)
	@mkdir -p build
	$(CXX) $(UNIT_FLAGS) -O1 $(SAN_FLAGS) -o $@ $(UNIT_SRCS) $(CORE_SRCS) -lgtest -lgtest_main -pthread

unit: build/unit_tests build/unit_tests_sanitized
	build/unit_tests
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 build/unit_tests_sanitized

# TAP tests alone (an older name of prove_installcheck).
tap: prove_installcheck

# The Debian packages the build and the tests need (as root; nothing else installs any, except
# make test, which runs this first).
deps:
	bash -c '. scripts/lib.sh && install_deps && install_test_deps'

test:
	bash scripts/test.sh

# The example Prometheus alert rules, checked and unit-tested by promtool (Debian's prometheus).
test-alerts:
	promtool check rules examples/alerts.yml
	cd examples && promtool test rules alerts.test.yml

# clang-format (.clang-format) on every C++ file of src/, test/unit/ and bench/ (scripts/format.sh).
format:
	bash scripts/format.sh fix

format-check:
	bash scripts/format.sh check

# Structural rules of the sources (layers, the core boundary, messages, SQL names, schedule),
# the paths and links the documents name, and the format.
lint: format-check
	python3 scripts/lint.py
	python3 scripts/lint_docs.py

# Every test on each tested major: 15 (the host's packages), 17 and 18 (Debian chroots).
test-all:
	bash scripts/matrix.sh

demo:
	bash scripts/demo.sh

bench:
	bash bench/run.sh

.PHONY: not-root unit test-alerts tap prove_installcheck deps test test-all lint format format-check demo bench installcheck-regress check-release dist deb
