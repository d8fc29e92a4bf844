/* proc.c - the process skeleton (see proc.h). */
#include "proc.h"
#include "log.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

static volatile sig_atomic_t stop_signal;
static void on_stop(int sig) { stop_signal = sig; }

void proc_init(proc *p, int id)
{
    memset(p, 0, sizeof *p);
    p->id = id;
    log_proc = proc_names[id];
}

int proc_option(proc *p, int c, const char *arg)
{
    switch (c) {
    case 'r': p->run_dir = arg; return 1;
    case 's': p->shm = arg; return 1;
    case 'm': p->model_dir = arg; return 1;
    case 'v': log_verbose = 1; return 1;
    default: return 0;
    }
}

int proc_open(proc *p)
{
    if (!p->run_dir || !p->shm || !p->model_dir) {
        LOG_ERR("--run-dir, --shm and --model-dir are required");
        return -1;
    }
    int rc = store_open(&p->st, p->shm);
    if (rc) {
        LOG_ERR("open shared memory %s: %s", p->shm, strerror(-rc));
        return -1;
    }
    p->opened = 1;
    p->router_epoch = atomic_load(&p->st.hdr->epoch[PROC_ROUTER]);
    return 0;
}

static void stop_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
}

void proc_catch_stop(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

void proc_register(proc *p, enum proc_stop stop)
{
    signal(SIGPIPE, SIG_IGN);
    if (stop == PROC_STOP_WAIT) {
        sigset_t set;
        stop_set(&set);
        pthread_sigmask(SIG_BLOCK, &set, NULL);   /* pending until proc_wait_stop takes it */
    } else if (stop == PROC_STOP_FLAG) {
        proc_catch_stop();
    }
    store_register(&p->st, p->id);
}

int proc_stopping(void) { return stop_signal; }

void proc_wait_stop(void)
{
    sigset_t stop;
    int sig = 0;
    stop_set(&stop);
    while (sigwait(&stop, &sig) != 0) {}
    stop_signal = sig;
}

int proc_router_restarted(proc *p)
{
    uint32_t e = atomic_load(&p->st.hdr->epoch[PROC_ROUTER]);
    if (e == p->router_epoch)
        return 0;
    p->router_epoch = e;
    return 1;
}

void proc_free(proc *p)
{
    if (!p->opened)
        return;
    store_heartbeat_stop();
    store_orphan_cleanup(&p->st, p->run_dir, p->id);
    store_close(&p->st);
    p->opened = 0;
}
