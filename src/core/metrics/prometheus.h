/*
 * prometheus.h — Prometheus text exposition format 0.0.4 (pure C++).
 */
#ifndef POOLGUARD_CORE_PROMETHEUS_H
#define POOLGUARD_CORE_PROMETHEUS_H

#include <string>
#include <string_view>

namespace poolguard::core
{

/* A label value escaped for the text format: \ " and newline become \\ \" \n. */
std::string prometheus_escape(std::string_view value);

/* Builds the exposition text: one family header, then its samples. */
class MetricsText
{
  public:
    /* "# HELP name help\n# TYPE name type\n"; type is "gauge" or "counter". */
    void family(std::string_view name, std::string_view type, std::string_view help);

    /* name{l1="v1",l2="v2"} value — labels as alternating name/value pairs (0 to 3 pairs). */
    void sample(std::string_view name, double value);
    void sample(std::string_view name, std::string_view l1, std::string_view v1, double value);
    void sample(std::string_view name, std::string_view l1, std::string_view v1, std::string_view l2,
                std::string_view v2, double value);
    void sample(std::string_view name, std::string_view l1, std::string_view v1, std::string_view l2,
                std::string_view v2, std::string_view l3, std::string_view v3, double value);

    const std::string &text() const
    {
        return text_;
    }

  private:
    void value(double v);
    /* Appends OPEN ("{" or ",") and one label: name="escaped value". */
    void label(char open, std::string_view name, std::string_view v);
    std::string text_;
};

} // namespace poolguard::core

#endif
