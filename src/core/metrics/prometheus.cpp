/*
 * prometheus.cpp — escaping and formatting of samples (integers print without exponent).
 */
#include "core/metrics/prometheus.h"

#include <cmath>
#include <cstdio>

#include "core/no_server_headers.h" /* last: fails the build if a server header slipped in */

namespace poolguard::core
{

std::string prometheus_escape(std::string_view value)
{
    std::string out;
    out.reserve(value.size());
    for (char c : value)
    {
        if (c == '\\')
            out += "\\\\";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

void MetricsText::family(std::string_view name, std::string_view type, std::string_view help)
{
    text_ += "# HELP ";
    text_ += name;
    text_ += ' ';
    for (char c : help) /* HELP escapes \ and newline only */
        text_ += c == '\n' ? std::string("\\n") : c == '\\' ? std::string("\\\\") : std::string(1, c);
    text_ += "\n# TYPE ";
    text_ += name;
    text_ += ' ';
    text_ += type;
    text_ += '\n';
}

void MetricsText::value(double v)
{
    char buf[64];
    if (std::isnan(v))
        std::snprintf(buf, sizeof(buf), "NaN");
    else if (std::isinf(v))
        std::snprintf(buf, sizeof(buf), v > 0 ? "+Inf" : "-Inf");
    else if (v == std::floor(v) && std::fabs(v) < 1e15)
        std::snprintf(buf, sizeof(buf), "%.0f", v);
    else
        std::snprintf(buf, sizeof(buf), "%.6g", v);
    text_ += ' ';
    text_ += buf;
    text_ += '\n';
}

void MetricsText::sample(std::string_view name, double v)
{
    text_ += name;
    value(v);
}

void MetricsText::label(char open, std::string_view name, std::string_view v)
{
    text_ += open;
    text_ += name;
    text_ += "=\"";
    text_ += prometheus_escape(v);
    text_ += '"';
}

void MetricsText::sample(std::string_view name, std::string_view l1, std::string_view v1, double v)
{
    text_ += name;
    label('{', l1, v1);
    text_ += '}';
    value(v);
}

void MetricsText::sample(std::string_view name, std::string_view l1, std::string_view v1, std::string_view l2,
                         std::string_view v2, double v)
{
    text_ += name;
    label('{', l1, v1);
    label(',', l2, v2);
    text_ += '}';
    value(v);
}

void MetricsText::sample(std::string_view name, std::string_view l1, std::string_view v1, std::string_view l2,
                         std::string_view v2, std::string_view l3, std::string_view v3, double v)
{
    text_ += name;
    label('{', l1, v1);
    label(',', l2, v2);
    label(',', l3, v3);
    text_ += '}';
    value(v);
}

} // namespace poolguard::core
