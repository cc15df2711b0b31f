/*
 * datums.cpp — Datums of the views' rows (see datums.h).  Called outside every pg_poolguard
 * lock: on copies already taken out of shared memory.
 */
#include "pg/datums.h"

#include <arpa/inet.h>

namespace poolguard
{

Datum name_datum(const char *s)
{
    Name name = static_cast<Name>(palloc0(NAMEDATALEN));
    namestrcpy(name, s ? s : "");
    return NameGetDatum(name);
}

bool inet_datum(const core::IpAddress &ip, Datum *out)
{
    char text[INET6_ADDRSTRLEN];
    if (ip.family == 0 ||
        inet_ntop(ip.family == 4 ? AF_INET : AF_INET6, ip.bytes, text, sizeof(text)) == NULL)
        return false;
    *out = DirectFunctionCall1(inet_in, CStringGetDatum(text));
    return true;
}

Datum interval_datum(int64 us)
{
    Interval *iv = static_cast<Interval *>(palloc0(sizeof(Interval)));
    iv->time = us;
    return IntervalPGetDatum(iv);
}

} // namespace poolguard
