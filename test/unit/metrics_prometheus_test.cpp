#include "core/metrics/prometheus.h"

#include <gtest/gtest.h>

using namespace poolguard::core;

TEST(Prometheus, Escaping)
{
    EXPECT_EQ(prometheus_escape("plain"), "plain");
    EXPECT_EQ(prometheus_escape("a\"b"), "a\\\"b");
    EXPECT_EQ(prometheus_escape("a\\b"), "a\\\\b");
    EXPECT_EQ(prometheus_escape("a\nb"), "a\\nb");
}

TEST(Prometheus, Families)
{
    MetricsText m;
    m.family("poolguard_sessions", "gauge", "Client sessions.");
    m.sample("poolguard_sessions", "policy", "web \"x\"", "state", "idle", 3);
    m.family("poolguard_scans_total", "counter", "Scans.");
    m.sample("poolguard_scans_total", 12345678901.0);
    m.sample("poolguard_x_seconds", "policy", "p", 0.25);
    EXPECT_EQ(m.text(), "# HELP poolguard_sessions Client sessions.\n"
                        "# TYPE poolguard_sessions gauge\n"
                        "poolguard_sessions{policy=\"web \\\"x\\\"\",state=\"idle\"} 3\n"
                        "# HELP poolguard_scans_total Scans.\n"
                        "# TYPE poolguard_scans_total counter\n"
                        "poolguard_scans_total 12345678901\n"
                        "poolguard_x_seconds{policy=\"p\"} 0.25\n");
}

TEST(Prometheus, ThreeLabels)
{
    MetricsText m;
    m.sample("poolguard_app_sessions_ended_total", "database", "shop", "application_name", "next\napp",
             "reason", "idle_timeout", 2);
    EXPECT_EQ(m.text(),
              "poolguard_app_sessions_ended_total{database=\"shop\",application_name=\"next\\napp\","
              "reason=\"idle_timeout\"} 2\n");
}
