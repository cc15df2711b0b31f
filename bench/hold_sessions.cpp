// hold_sessions — opens N libpq sessions, lets them go idle, and measures how long each stays
// idle until the server closes it.  Used by the benchmarks to compare pg_poolguard's reaper
// with the built-in idle_session_timeout on identical sessions, measured the same way.
//
//   hold_sessions CONNINFO N SECONDS [SETUP_SQL] [STAGGER_MS]
//
// A "%d" in CONNINFO becomes the session's number (1..N): "user=t%d" logs session i in as ti.
//
// Prints one line: "opened=N closed=M p50_ms=.. p99_ms=.. max_ms=.." where the times are how
// long each closed session was idle (from its last query's end to the server closing it).
#include <libpq-fe.h>
#include <poll.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

using Clock = std::chrono::steady_clock;

int main(int argc, char **argv)
{
    if (argc < 4)
    {
        std::fprintf(stderr, "usage: %s CONNINFO N SECONDS [SETUP_SQL] [STAGGER_MS]\n", argv[0]);
        return 2;
    }
    const char *conninfo = argv[1];
    int n = std::atoi(argv[2]);
    double seconds = std::atof(argv[3]);
    std::string setup = argc > 4 ? argv[4] : "";
    int stagger_ms = argc > 5 ? std::atoi(argv[5]) : 0;

    // One descriptor per session: runuser (the scripts run this as postgres) resets the soft
    // limit to 1,024, the hard one stays where the script set it.
    struct rlimit files;
    if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max)
    {
        files.rlim_cur = files.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &files);
    }

    struct Session
    {
        PGconn *conn;
        Clock::time_point idle_since;
        double idle_ms = -1;
    };
    std::vector<Session> sessions;

    for (int i = 0; i < n; i++)
    {
        std::string ci = conninfo;
        size_t at = ci.find("%d");
        if (at != std::string::npos)
            ci.replace(at, 2, std::to_string(i + 1));
        PGconn *conn = PQconnectdb(ci.c_str());
        if (PQstatus(conn) != CONNECTION_OK)
        {
            std::fprintf(stderr, "connect %d failed: %s", i, PQerrorMessage(conn));
            PQfinish(conn);
            break;
        }
        if (!setup.empty())
        {
            PGresult *res = PQexec(conn, setup.c_str());
            if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
                std::fprintf(stderr, "setup failed: %s", PQerrorMessage(conn));
            PQclear(res);
        }
        sessions.push_back({conn, Clock::now()});
        if (stagger_ms > 0)
            std::this_thread::sleep_for(std::chrono::milliseconds(stagger_ms));
    }

    auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
    size_t open = sessions.size();
    while (open > 0 && Clock::now() < deadline)
    {
        std::vector<pollfd> fds;
        std::vector<size_t> index;
        for (size_t i = 0; i < sessions.size(); i++)
            if (sessions[i].idle_ms < 0)
            {
                fds.push_back({PQsocket(sessions[i].conn), POLLIN, 0});
                index.push_back(i);
            }
        int left_ms =
            (int)std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (poll(fds.data(), fds.size(), std::max(left_ms, 0)) <= 0)
            continue;
        auto now = Clock::now();
        for (size_t k = 0; k < fds.size(); k++)
        {
            if (!(fds[k].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            Session &s = sessions[index[k]];
            // Readable while idle: the server sent its FATAL and/or closed the connection.
            if (PQconsumeInput(s.conn) == 0 || PQstatus(s.conn) == CONNECTION_BAD ||
                (fds[k].revents & POLLHUP))
            {
                s.idle_ms = std::chrono::duration<double, std::milli>(now - s.idle_since).count();
                open--;
            }
        }
    }

    std::vector<double> idle;
    for (auto &s : sessions)
    {
        if (s.idle_ms >= 0)
            idle.push_back(s.idle_ms);
        PQfinish(s.conn);
    }
    std::sort(idle.begin(), idle.end());
    auto pct = [&](double p)
    { return idle.empty() ? -1.0 : idle[std::min(idle.size() - 1, (size_t)(p * idle.size()))]; };
    std::printf("opened=%zu closed=%zu p50_ms=%.1f p99_ms=%.1f max_ms=%.1f\n", sessions.size(), idle.size(),
                pct(0.50), pct(0.99), idle.empty() ? -1.0 : idle.back());
    return 0;
}
