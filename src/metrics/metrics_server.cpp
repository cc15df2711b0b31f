/*
 * metrics_server.cpp — a small, defensive HTTP server in its own background worker, so a
 * scrape can never block the reaper.
 *
 * Bounded everything: at most max_clients connections, at most max_request bytes of request
 * head per client, header_timeout to send the request head and then client_timeout to receive
 * the answer (slow and half-open clients are dropped), one response per connection.  Idle
 * clients cannot hold the slots against a scraper: one address holds at most per_peer_limit
 * slots, and when the slots are taken a new connection displaces the oldest client still
 * sending its request head (core::choose_client_slot); only answers in flight are never
 * displaced, so a 503 means max_clients scrapes are being answered at once.  Unauthenticated: it listens
 * where poolguard.metrics_listen says, which should be a loopback address unless the administrator decides
 * otherwise.
 */

#include "pg/bgworker.h"
#include "pg/guard.h"
#include "pg/guc.h"
#include "metrics/metrics.h"
#include "pg/shmem.h"

#include "core/metrics/http.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>

namespace poolguard
{

namespace
{

constexpr int max_clients = 64;
constexpr size_t max_request = 8192;
constexpr int64 header_timeout_us = 1LL * 1000 * 1000; /* a scraper sends its head at once */
constexpr int64 client_timeout_us = 5LL * 1000 * 1000; /* to receive the answer */
constexpr int per_peer_limit = 8;
constexpr int poll_ms = 100;
constexpr long bind_retry_ms = 10000;

struct Client
{
    int fd; /* -1 = free */
    TimestampTz accepted_at;
    TimestampTz deadline;
    unsigned char peer[core::peer_size];
    size_t len;
    char request[max_request];
    char *response; /* malloc'd once the request is answered */
    size_t response_len;
    size_t sent;
};

Client *clients = nullptr;
int listen_fd = -1;

void close_client(Client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->response);
    c->fd = -1;
    c->response = nullptr;
    c->len = c->response_len = c->sent = 0;
}

/* Renders a response into malloc'd memory (no PostgreSQL calls: std::string stays local). */
bool set_response(Client *c, int status, const char *content_type, const char *body, size_t body_len)
{
    try
    {
        std::string r = core::http_response(status, content_type, std::string_view(body, body_len));
        c->response = static_cast<char *>(malloc(r.size()));
        if (c->response == nullptr)
            return false;
        memcpy(c->response, r.data(), r.size());
        c->response_len = r.size();
        c->sent = 0;
        return true;
    }
    catch (...)
    {
        return false;
    }
}

bool set_text_response(Client *c, int status, const char *body)
{
    return set_response(c, status, "text/plain; charset=utf-8", body, strlen(body));
}

/* The metrics text, built in a transaction; errors become a 500, never an exit. */
void answer_metrics(Client *c, bool head_only)
{
    MemoryContext old = CurrentMemoryContext;
    char *text = nullptr;

    ErrorData *error =
        run_catching_errors("metrics", old,
                            [&text]()
                            {
                                StartTransactionCommand();
                                char *built = build_metrics();
                                text = static_cast<char *>(MemoryContextStrdup(TopMemoryContext, built));
                                CommitTransactionCommand();
                            });
    MemoryContextSwitchTo(old);
    if (error != nullptr)
    {
        ereport(LOG, (errmsg("pg_poolguard metrics: could not build the metrics: %s", error->message)));
        FreeErrorData(error);
        if (text != nullptr)
            pfree(text);
        text = nullptr;
    }

    if (text == nullptr)
        (void)set_text_response(c, 500, "metrics unavailable, see the server log\n");
    else
    {
        (void)set_response(c, 200, "text/plain; version=0.0.4; charset=utf-8", text,
                           head_only ? 0 : strlen(text));
        pfree(text);
    }
}

void handle_request(Client *c)
{
    core::HttpParse status;
    bool is_get = false, is_head = false, is_metrics = false;
    try
    {
        core::HttpRequest req = core::parse_http_request(std::string_view(c->request, c->len), max_request);
        status = req.status;
        is_get = req.method == "GET";
        is_head = req.method == "HEAD";
        is_metrics = req.path == "/metrics";
    }
    catch (...)
    {
        status = core::HttpParse::bad_request;
    }

    switch (status)
    {
    case core::HttpParse::incomplete:
        if (c->len >= max_request)
            (void)set_text_response(c, 431, "request too large\n");
        return;
    case core::HttpParse::too_large:
        (void)set_text_response(c, 431, "request too large\n");
        return;
    case core::HttpParse::bad_request:
        (void)set_text_response(c, 400, "bad request\n");
        return;
    case core::HttpParse::ok:
        break;
    }
    if (!is_get && !is_head)
        (void)set_text_response(c, 405, "only GET /metrics\n");
    else if (!is_metrics)
        (void)set_text_response(c, 404, "not found: try /metrics\n");
    else
        answer_metrics(c, is_head);
}

bool open_listener(void)
{
    auto addr = core::parse_listen_address(guc_metrics_listen); /* validated by the GUC check hook */
    if (!addr)
        return false;
    char port[16];
    snprintf(port, sizeof(port), "%d", addr->port);
    struct addrinfo hints, *res = nullptr;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int rc = getaddrinfo(addr->host.c_str(), port, &hints, &res);
    if (rc != 0 || res == nullptr)
    {
        ereport(LOG, (errmsg("pg_poolguard metrics: could not resolve \"%s\": %s", guc_metrics_listen,
                             gai_strerror(rc))));
        return false;
    }
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, res->ai_protocol);
    int one = 1;
    bool ok = fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
              bind(fd, res->ai_addr, res->ai_addrlen) == 0 && listen(fd, 64) == 0;
    int saved_errno = errno;
    freeaddrinfo(res);
    if (!ok)
    {
        if (fd >= 0)
            close(fd);
        errno = saved_errno;
        ereport(LOG, (errcode_for_socket_access(),
                      errmsg("pg_poolguard metrics: could not listen on \"%s\": %m", guc_metrics_listen),
                      errhint("The worker retries every %ld s.", bind_retry_ms / 1000)));
        return false;
    }
    listen_fd = fd;
    ereport(LOG, (errmsg("pg_poolguard metrics listening on %s (GET /metrics, unauthenticated)",
                         guc_metrics_listen)));
    return true;
}

/* The peer's address as the slot rule compares it: family byte, then the address bytes. */
void peer_key(const struct sockaddr_storage *addr, unsigned char *peer)
{
    memset(peer, 0, core::peer_size);
    if (addr->ss_family == AF_INET)
    {
        peer[0] = 4;
        memcpy(peer + 1, &reinterpret_cast<const struct sockaddr_in *>(addr)->sin_addr, 4);
    }
    else if (addr->ss_family == AF_INET6)
    {
        peer[0] = 6;
        memcpy(peer + 1, &reinterpret_cast<const struct sockaddr_in6 *>(addr)->sin6_addr, 16);
    }
}

void accept_clients(TimestampTz now)
{
    for (;;)
    {
        struct sockaddr_storage addr;
        socklen_t addrlen = sizeof(addr);
        memset(&addr, 0, sizeof(addr));
        int fd = accept4(listen_fd, reinterpret_cast<struct sockaddr *>(&addr), &addrlen,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        unsigned char peer[core::peer_size];
        peer_key(&addr, peer);

        core::ClientSlotView views[max_clients];
        for (int i = 0; i < max_clients; i++)
        {
            views[i].used = clients[i].fd >= 0;
            views[i].answering = clients[i].response != nullptr;
            views[i].accepted_at = clients[i].accepted_at;
            memcpy(views[i].peer, clients[i].peer, core::peer_size);
        }
        core::SlotChoice choice = core::choose_client_slot(views, max_clients, peer, per_peer_limit);
        if (choice.evict >= 0)
            close_client(&clients[choice.evict]); /* an idle client makes room */
        Client *slot = choice.slot >= 0 ? &clients[choice.slot] : nullptr;
        if (slot == nullptr)
        {
            static const char busy[] =
                "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            (void)send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            close(fd);
            continue;
        }
        slot->fd = fd;
        slot->accepted_at = now;
        slot->deadline = now + header_timeout_us;
        memcpy(slot->peer, peer, core::peer_size);
        slot->len = 0;
    }
}

void serve(void)
{
    struct pollfd fds[max_clients + 1];
    int index[max_clients + 1];

    for (;;)
    {
        CHECK_FOR_INTERRUPTS();
        if (ConfigReloadPending)
        {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
        }
        if (!PostmasterIsAlive())
            proc_exit(1);

        int n = 0;
        fds[n].fd = listen_fd;
        fds[n].events = POLLIN;
        index[n++] = -1;
        for (int i = 0; i < max_clients; i++)
            if (clients[i].fd >= 0)
            {
                fds[n].fd = clients[i].fd;
                fds[n].events = clients[i].response ? POLLOUT : POLLIN;
                index[n++] = i;
            }
        int ready = poll(fds, n, poll_ms);
        TimestampTz now = GetCurrentTimestamp();
        if (ready > 0)
        {
            for (int k = 1; k < n; k++)
            {
                Client *c = &clients[index[k]];
                if (fds[k].revents & (POLLERR | POLLNVAL))
                {
                    close_client(c);
                    continue;
                }
                if (c->response == nullptr && (fds[k].revents & (POLLIN | POLLHUP)))
                {
                    ssize_t got = recv(c->fd, c->request + c->len, max_request - c->len, 0);
                    if (got <= 0)
                    {
                        if (got == 0 || (errno != EAGAIN && errno != EINTR))
                            close_client(c);
                        continue;
                    }
                    c->len += (size_t)got;
                    handle_request(c);
                    if (c->response != nullptr)
                        c->deadline = now + client_timeout_us; /* the answer's own time to go out */
                }
                if (c->response != nullptr)
                {
                    ssize_t put = send(c->fd, c->response + c->sent, c->response_len - c->sent,
                                       MSG_NOSIGNAL | MSG_DONTWAIT);
                    if (put < 0 && errno != EAGAIN && errno != EINTR)
                        close_client(c);
                    else if (put > 0 && (c->sent += (size_t)put) >= c->response_len)
                        close_client(c);
                }
            }
            if (fds[0].revents & POLLIN)
                accept_clients(now);
        }
        for (int i = 0; i < max_clients; i++)
            if (clients[i].fd >= 0 && now >= clients[i].deadline)
                close_client(&clients[i]); /* slow, silent or half-open */
    }
}

} // namespace

void metrics_server_register(void)
{
    if (guc_metrics_listen == nullptr || guc_metrics_listen[0] == '\0')
        return;
    BackgroundWorker worker;
    init_background_worker(&worker, "poolguard_metrics_main", "pg_poolguard metrics", 5);
    worker.bgw_start_time = BgWorkerStart_ConsistentState; /* metrics of hot standbys too */
    RegisterBackgroundWorker(&worker);
}

} // namespace poolguard

using namespace poolguard;

extern "C" void poolguard_metrics_main(Datum arg)
{
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();

    /* The main worker owns the missing-database story; wait for it instead of looping. */
    while (pg_atomic_read_u32(&worker_state->database_missing) != 0)
    {
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
    }
    connect_background_worker(guc_database, InvalidOid, "pg_poolguard metrics", LOG);
    pgstat_report_appname("pg_poolguard metrics");

    clients = static_cast<Client *>(MemoryContextAllocZero(TopMemoryContext, sizeof(Client) * max_clients));
    for (int i = 0; i < max_clients; i++)
        clients[i].fd = -1;

    while (!open_listener())
    {
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, bind_retry_ms,
                        PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
    }
    serve();
}
