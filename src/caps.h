/*
 * caps.h — per-policy connection caps at login, and per-policy counters.
 *
 * Every login that passes authentication is counted against the first policy it matches: a
 * slot per PGPROC records which policy admitted the backend, and the policy's session count is
 * checked and reserved atomically under one LWLock, then released when the backend exits
 * (before_shmem_exit, so FATAL paths release too; a crash reinitializes shared memory).
 */
#ifndef POOLGUARD_CAPS_H
#define POOLGUARD_CAPS_H

#include "postgres_headers.h"

namespace poolguard {

enum class PolicyCount
{
    rejected,
    evicted,
    terminated,
};

void caps_register(void);
void caps_install_hooks(void);

/* Adds one to a per-policy counter (kept by policy name across reloads). */
void policy_count(const char *policy, PolicyCount what);

/* Zeroes the per-policy counters (not the live session counts). */
void caps_reset_counters(void);

}  // namespace poolguard

#endif
