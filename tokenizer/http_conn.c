/* http_conn.c - a connection's socket, client-gone checks and read deadlines (see
 * http_conn.h). */
#include "http_conn.h"
#include "../common/log.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* 1 when FD is the TCP connection of request RI: same peer address and port, same local port */
static int is_conn(int fd, const struct mg_request_info *ri)
{
    struct sockaddr_storage a;
    socklen_t n = sizeof a;
    char host[INET6_ADDRSTRLEN];
    int port;
    if (getpeername(fd, (struct sockaddr *)&a, &n)) /* not a connected socket */
        return 0;
    if (a.ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)&a;
        inet_ntop(AF_INET, &s->sin_addr, host, sizeof host);
        port = ntohs(s->sin_port);
    } else if (a.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&a;
        inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof host);
        port = ntohs(s->sin6_port);
    } else {
        return 0;
    }
    if (port != ri->remote_port || strcmp(host, ri->remote_addr))
        return 0;
    n = sizeof a;
    if (getsockname(fd, (struct sockaddr *)&a, &n))
        return 0;
    port = a.ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)&a)->sin_port)
                                  : ntohs(((const struct sockaddr_in6 *)&a)->sin6_port);
    return port == ri->server_port;
}

int http_conn_fd(const struct mg_connection *c)
{
    static __thread int cached = -1; /* a civetweb thread serves one connection at a time */
    const struct mg_request_info *ri = mg_get_request_info(c);
    if (!ri)
        return -1;
    if (cached >= 0 && is_conn(cached, ri))
        return cached;
    cached = -1;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    struct dirent *e;
    while (cached < 0 && (e = readdir(d))) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] != '.' && fd != dirfd(d) && is_conn(fd, ri))
            cached = fd;
    }
    closedir(d);
    return cached;
}

int http_conn_gone(int fd)
{
    struct pollfd p = {fd, POLLRDHUP, 0};
    return fd >= 0 && poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* ---- the deadline watchdog: one thread, a list of armed deadlines */

static pthread_mutex_t wd_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wd_cv;
static pthread_once_t wd_once = PTHREAD_ONCE_INIT;
static int wd_running;
static http_deadline *wd_head;

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void *wd_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&wd_mu);
    for (;;) {
        uint64_t now = mono_us(), next = now + 1000000;
        for (http_deadline *d = wd_head; d; d = d->next) {
            if (d->fired)
                continue;
            if (d->at_us <= now) {
                shutdown(d->fd, SHUT_RD); /* the owner still holds the socket open */
                d->fired = 1;
            } else if (d->at_us < next) {
                next = d->at_us;
            }
        }
        struct timespec until = {(time_t)(next / 1000000u), (long)(next % 1000000u) * 1000};
        pthread_cond_timedwait(&wd_cv, &wd_mu, &until);
    }
    return NULL;
}

static void wd_start(void)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&wd_cv, &a);
    pthread_condattr_destroy(&a);
    pthread_t t;
    if (pthread_create(&t, NULL, wd_main, NULL)) {
        LOG_ERR("cannot start the request deadline thread: body reads are bounded only between reads");
        return;
    }
    pthread_detach(t);
    wd_running = 1;
}

void http_deadline_arm(http_deadline *d, int fd, int ms)
{
    memset(d, 0, sizeof *d);
    d->fd = fd;
    if (fd < 0 || pthread_once(&wd_once, wd_start) || !wd_running)
        return;
    d->at_us = mono_us() + (uint64_t)ms * 1000u;
    pthread_mutex_lock(&wd_mu);
    d->next = wd_head;
    if (wd_head)
        wd_head->prev = d;
    wd_head = d;
    d->armed = 1;
    pthread_cond_signal(&wd_cv);
    pthread_mutex_unlock(&wd_mu);
}

int http_deadline_disarm(http_deadline *d)
{
    if (!d->armed)
        return 0;
    pthread_mutex_lock(&wd_mu);
    if (d->prev)
        d->prev->next = d->next;
    else
        wd_head = d->next;
    if (d->next)
        d->next->prev = d->prev;
    d->armed = 0;
    int fired = d->fired;
    pthread_mutex_unlock(&wd_mu);
    return fired;
}
