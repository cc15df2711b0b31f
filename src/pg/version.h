/*
 * version.h — the library's version.
 *
 * POOLGUARD_EXTVERSION must equal the Makefile's EXTVERSION, the one version number of a release
 * (scripts/check_release.py fails `make test` and `make dist` when it, the control file, META.json
 * or debian/changelog disagree).  The library version is its semantic-version form.
 */
#ifndef POOLGUARD_VERSION_H
#define POOLGUARD_VERSION_H

#define POOLGUARD_EXTVERSION "1.2"
#define POOLGUARD_VERSION POOLGUARD_EXTVERSION ".0"

#endif
