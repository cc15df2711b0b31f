/*
 * srf.h — materialized set-returning functions (the classic equivalent of InitMaterializedSRF).
 */
#ifndef POOLGUARD_SRF_H
#define POOLGUARD_SRF_H

#include "postgres_headers.h"

namespace poolguard {

/* Sets up rsinfo->setResult / setDesc for a function that returns SETOF a row type. */
inline void materialized_srf(FunctionCallInfo fcinfo)
{
    ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
    TupleDesc desc;

    if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) || !(rsinfo->allowedModes & SFRM_Materialize))
        ereport(ERROR,
                (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                 errmsg("set-valued function called in context that cannot accept a set")));
    if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
        elog(ERROR, "pg_poolguard: return type must be a row type");

    MemoryContext old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
    rsinfo->setDesc = CreateTupleDescCopy(desc);
    rsinfo->setResult = tuplestore_begin_heap(true, false, work_mem);
    rsinfo->returnMode = SFRM_Materialize;
    MemoryContextSwitchTo(old);
}

}  // namespace poolguard

#endif
