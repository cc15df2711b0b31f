/* version.h — the library version; the install script's default_version tracks its major.minor. */
#ifndef POOLGUARD_VERSION_H
#define POOLGUARD_VERSION_H

#define POOLGUARD_VERSION "1.0.0"

#endif
