/*
 * process_memory.cpp — parses /proc/<pid>/status ("RssAnon:", "VmSwap:", values in kB) and
 * /proc/<pid>/maps lines; the private-memory definition (process_memory.h).
 */
#include "core/enforce/process_memory.h"

#include "core/no_server_headers.h" /* last: fails the build if a server header slipped in */

namespace poolguard::core
{

namespace
{

/* The number after "name" (spaces and tabs skipped), in kB; false if there is none. */
bool field_kb(std::string_view line, std::string_view name, int64_t *kb)
{
    if (line.substr(0, name.size()) != name)
        return false;
    size_t i = name.size();
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t'))
        i++;
    int64_t value = 0;
    bool digits = false;
    for (; i < line.size() && line[i] >= '0' && line[i] <= '9'; i++)
    {
        if (value > (INT64_MAX / 1024 - 9) / 10)
            return false; /* no process has that much; refuse rather than overflow */
        value = value * 10 + (line[i] - '0');
        digits = true;
    }
    *kb = value;
    return digits;
}

/* Hexadecimal number at the start of s (advances s); false if none. */
bool take_hex(std::string_view *s, uint64_t *out)
{
    uint64_t value = 0;
    size_t i = 0;
    for (; i < s->size() && i < 16; i++)
    {
        char c = (*s)[i];
        int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (digit < 0)
            break;
        value = value * 16 + digit;
    }
    if (i == 0)
        return false;
    s->remove_prefix(i);
    *out = value;
    return true;
}

template <typename Fn> void each_line(std::string_view text, Fn fn)
{
    while (!text.empty())
    {
        size_t eol = text.find('\n');
        if (!fn(text.substr(0, eol)) || eol == std::string_view::npos)
            return;
        text.remove_prefix(eol + 1);
    }
}

} // namespace

bool parse_process_status(std::string_view text, ProcessMemory *out)
{
    ProcessMemory m;
    int64_t kb;
    each_line(text,
              [&](std::string_view line)
              {
                  if (field_kb(line, "RssAnon:", &kb))
                      m.anon_resident = kb * 1024;
                  else if (field_kb(line, "VmSwap:", &kb))
                      m.anon_swapped = kb * 1024;
                  return true;
              });
    *out = m;
    return m.anon_resident >= 0;
}

int64_t private_memory_bytes(const ProcessMemory &process, const ProcessMemory *postmaster)
{
    if (process.anon_resident < 0)
        return -1;
    int64_t bytes = process.anon_resident + process.anon_swapped;
    if (postmaster != nullptr && postmaster->anon_resident >= 0)
        bytes -= postmaster->anon_resident + postmaster->anon_swapped;
    return bytes > 0 ? bytes : 0;
}

bool find_mapping(std::string_view text, uint64_t address, Mapping *out)
{
    bool found = false;
    each_line(text,
              [&](std::string_view line)
              {
                  Mapping m;
                  if (!take_hex(&line, &m.start) || line.empty() || line[0] != '-')
                      return true;
                  line.remove_prefix(1);
                  if (!take_hex(&line, &m.end) || address < m.start || address >= m.end)
                      return true;
                  /* The path is the last field; MAP_HUGETLB mappings are named /anon_hugepage. */
                  m.hugetlb = line.find("/anon_hugepage") != std::string_view::npos;
                  *out = m;
                  found = true;
                  return false;
              });
    return found;
}

} // namespace poolguard::core
