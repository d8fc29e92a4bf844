/* cluster.c - real launches for the end-to-end tests (see cluster.h). */
#include "cluster.h"
#include "http_client.h"
#include "prom.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int cluster_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t n = sizeof a;
    int port = -1;
    if (fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof a) && !getsockname(fd, (struct sockaddr *)&a, &n))
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

void cluster_use_build(void)
{
    const char *build = getenv("BUILD");
    char path[512], real[PATH_MAX];
    if (getenv("CINDER_BIN") || !build)
        return; /* launch.sh's default: build/bin */
    snprintf(path, sizeof path, "%s/bin", build);
    if (realpath(path, real))
        setenv("CINDER_BIN", real, 1);
}

int cluster_time_scale(void)
{
    const char *s = getenv("CINDER_TEST_TIME_SCALE");
    int k = s ? atoi(s) : 1;
    return k < 1 ? 1 : k > 50 ? 50 : k;
}

int cluster_start(cluster *c, const char *extra)
{
    cluster_use_build();
    snprintf(c->run_dir, sizeof c->run_dir, "/tmp/cinder-e2e.%d", (int)getpid());
    c->port = cluster_free_port();
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "rm -rf %s && scripts/launch.sh --detach --backend cpu --threads 2 --host 127.0.0.1"
             " --port %d --run-dir %s %s",
             c->run_dir, c->port, c->run_dir, extra ? extra : "");
    if (system(cmd) != 0) {
        fprintf(stderr, "cluster: launch failed: %s\n", cmd);
        return -1;
    }
    return 0;
}

void cluster_stop(cluster *c)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "scripts/stop.sh --run-dir %s", c->run_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cluster: stop failed\n");
}

const char *cluster_shm_stat_cmd(const char *run_dir)
{
    static char cmd[1024];
    snprintf(cmd, sizeof cmd, "\"$(sed -n 's/^BIN=//p' %s/run.env)/shm-tool\" stat --name"
             " \"$(sed -n 's/^SHM=//p' %s/run.env)\"", run_dir, run_dir);
    return cmd;
}

double cluster_stat(const cluster *c, const char *key)
{
    FILE *p = popen(cluster_shm_stat_cmd(c->run_dir), "r");
    if (!p)
        return -1;
    char line[2048] = "", pat[64];
    if (!fgets(line, sizeof line, p))
        line[0] = 0;
    pclose(p);
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *k = strstr(line, pat);
    return k ? atof(k + strlen(pat)) : -1;
}

int cluster_active_slots(const cluster *c) { return (int)cluster_stat(c, "active_slots"); }

int cluster_sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return rc == -1 ? -1 : WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
}

double cluster_metric(const cluster *c, const char *name)
{
    http_resp r;
    http_request(c->port, "GET", "/metrics", NULL, &r);
    double v = r.status == 200 && r.body ? prom_value(r.body, name, NULL) : -1;
    http_resp_free(&r);
    return v;
}

int cluster_restart(const cluster *c, const char *process, const char *sig)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "scripts/restart.sh --run-dir %s --signal %s %s", c->run_dir, sig, process);
    return system(cmd) == 0 ? 0 : -1;
}

double cluster_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}
