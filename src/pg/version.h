/*
 * version.h — the library's version.
 *
 * The one version number of a release is the Makefile's EXTVERSION; the Makefile passes it to
 * the objects that report it as -DPOOLGUARD_EXTVERSION (src/pg_poolguard.o: version();
 * src/pg/sql_version.o: the installed SQL's check).  The library version is its semantic-version
 * form.  The control file, META.json, debian/changelog and the npm package state it too, and
 * scripts/check_release.py fails `make test` and `make dist` when one of them disagrees.
 */
#ifndef POOLGUARD_VERSION_H
#define POOLGUARD_VERSION_H

#ifndef POOLGUARD_EXTVERSION
#error "POOLGUARD_EXTVERSION comes from the Makefile's EXTVERSION: add this object to VERSIONED_OBJS"
#endif

#define POOLGUARD_VERSION POOLGUARD_EXTVERSION ".0"

#endif
