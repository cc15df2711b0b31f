// hold_sessions — opens N libpq sessions, lets them go idle, and measures how long each stays
// idle until the server closes it.  Used by the benchmarks to compare pg_poolguard's reaper
// with the built-in idle_session_timeout on identical sessions, measured the same way.
//
//   hold_sessions CONNINFO N SECONDS [SETUP_SQL] [STAGGER_MS]
//
// A "%d" in CONNINFO becomes the session's number (1..N): "user=t%d" logs session i in as ti.
//
// STAGGER_MS = -1 ("together"): the N sessions go idle at the same moment.  Each session, as soon
// as it is open and set up, is sent "SELECT pg_advisory_xact_lock_shared(key)" and waits for a lock
// a control session (CONNINFO with application_name=hold_sessions_control) holds; once all N wait,
// the control session lets go and every session ends its query and goes idle at once.  The idle
// time of each is then counted from the moment its result arrived (so opening thousands of
// sessions one after the other, which takes seconds, never lets the first ones time out early).
//
// Prints one line: "opened=N closed=M p50_ms=.. p99_ms=.. max_ms=.. spread_ms=.." where the times
// are how long each closed session was idle (from its last query's end to the server closing it)
// and spread_ms is how far apart the sessions went idle (last minus first).
//
// Raises its own open-files limit to the hard limit (each session is a socket: 5,000 sessions need
// `ulimit -Hn` above 5,000).
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
    bool together = stagger_ms < 0;
    const char *lock_key = "7254022";

    /* together: the control session holds the lock the sessions wait for. */
    PGconn *control = nullptr;
    auto control_exec = [&](const std::string &sql) -> std::string
    {
        PGresult *res = PQexec(control, sql.c_str());
        std::string value;
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0)
            value = PQgetvalue(res, 0, 0);
        else if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
            std::fprintf(stderr, "control: %s", PQerrorMessage(control));
        PQclear(res);
        return value;
    };
    if (together)
    {
        std::string ci = conninfo;
        size_t at = ci.find("%d");
        if (at != std::string::npos)
            ci.replace(at, 2, "0");
        ci += " application_name=hold_sessions_control"; /* the last value of a keyword wins */
        control = PQconnectdb(ci.c_str());
        if (PQstatus(control) != CONNECTION_OK)
        {
            std::fprintf(stderr, "control connect failed: %s", PQerrorMessage(control));
            return 1;
        }
        control_exec(std::string("SELECT pg_advisory_lock(") + lock_key + ")");
    }

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
        if (together &&
            !PQsendQuery(conn,
                         (std::string("SELECT pg_advisory_xact_lock_shared(") + lock_key + ")").c_str()))
            std::fprintf(stderr, "send failed: %s", PQerrorMessage(conn));
        sessions.push_back({conn, Clock::now()});
        if (stagger_ms > 0)
            std::this_thread::sleep_for(std::chrono::milliseconds(stagger_ms));
    }

    Clock::time_point first_idle = Clock::now(), last_idle = first_idle;
    if (together)
    {
        /* Every session waits for the lock: then let go, and note when each went idle. */
        std::string waiting =
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = " + std::string(lock_key) +
            " AND NOT granted";
        auto give_up = Clock::now() + std::chrono::seconds(600);
        while (std::atol(control_exec(waiting).c_str()) < (long)sessions.size() && Clock::now() < give_up)
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        control_exec(std::string("SELECT pg_advisory_unlock(") + lock_key + ")");
        std::vector<bool> busy(sessions.size(), true);
        size_t pending = sessions.size();
        bool first = true;
        while (pending > 0 && Clock::now() < give_up)
        {
            std::vector<pollfd> fds;
            std::vector<size_t> index;
            for (size_t i = 0; i < sessions.size(); i++)
                if (busy[i])
                {
                    fds.push_back({PQsocket(sessions[i].conn), POLLIN, 0});
                    index.push_back(i);
                }
            if (poll(fds.data(), fds.size(), 1000) <= 0)
                continue;
            for (size_t k = 0; k < fds.size(); k++)
            {
                if (!fds[k].revents)
                    continue;
                Session &s = sessions[index[k]];
                bool done = PQconsumeInput(s.conn) == 0;
                while (!done && !PQisBusy(s.conn))
                {
                    PGresult *res = PQgetResult(s.conn);
                    if (res == nullptr)
                        done = true;
                    PQclear(res);
                }
                if (done)
                {
                    s.idle_since = Clock::now();
                    if (first)
                        first_idle = s.idle_since;
                    first = false;
                    last_idle = s.idle_since;
                    busy[index[k]] = false;
                    pending--;
                }
            }
        }
        PQfinish(control);
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
    std::printf("opened=%zu closed=%zu p50_ms=%.1f p99_ms=%.1f max_ms=%.1f spread_ms=%.1f\n", sessions.size(),
                idle.size(), pct(0.50), pct(0.99), idle.empty() ? -1.0 : idle.back(),
                std::chrono::duration<double, std::milli>(last_idle - first_idle).count());
    return 0;
}
