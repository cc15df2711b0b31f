/*
 * smaps.cpp — sums the "Private_Clean:" and "Private_Dirty:" lines (values in kB).
 */
#include "core/enforce/smaps.h"

#include "core/no_server_headers.h" /* last: fails the build if a server header slipped in */

namespace poolguard::core
{

namespace
{

bool field_kb(std::string_view line, std::string_view name, int64_t *kb)
{
    if (line.substr(0, name.size()) != name)
        return false;
    int64_t value = 0;
    bool digits = false;
    for (size_t i = name.size(); i < line.size(); i++)
    {
        char c = line[i];
        if (c >= '0' && c <= '9')
        {
            value = value * 10 + (c - '0');
            digits = true;
        }
        else if (digits)
            break;
    }
    *kb = value;
    return digits;
}

} // namespace

int64_t parse_private_memory(std::string_view text)
{
    int64_t total_kb = 0;
    bool found = false;

    while (!text.empty())
    {
        size_t eol = text.find('\n');
        std::string_view line = text.substr(0, eol);
        int64_t kb;
        if (field_kb(line, "Private_Clean:", &kb) || field_kb(line, "Private_Dirty:", &kb))
        {
            total_kb += kb;
            found = true;
        }
        if (eol == std::string_view::npos)
            break;
        text.remove_prefix(eol + 1);
    }
    return found ? total_kb * 1024 : -1;
}

} // namespace poolguard::core
