/* proc.h - the skeleton the four processes share: the common flags (--run-dir, --shm,
 * --model-dir, --verbose), the store each opens and registers in, stop signals that are
 * never lost, the heartbeat period (the store's STORE_BEAT_MS), and noticing that the router
 * was restarted (each process then re-connects its sockets to the new one).
 *
 *   proc p;
 *   proc_init(&p, PROC_WORKER);
 *   while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)   opts: PROC_OPTIONS, own ones
 *       switch (c) { own cases...; default: if (proc_option(&p, c, optarg) <= 0) usage; }
 *   if (proc_open(&p) < 0) return 1;        the three paths given, the store mapped
 *   ... load ...
 *   proc_register(&p, PROC_STOP_FLAG);      pid and epoch in the store; SIGTERM/SIGINT caught
 *   while (!proc_stopping()) {
 *       store_heartbeat(&p.st, p.id);
 *       if (proc_router_restarted(&p)) re-open the router's sockets;
 *       wait on a socket for at most PROC_BEAT_MS ...
 *   }
 *   proc_free(&p);                          cleans up after a launcher that is gone, unmaps
 */
#ifndef CINDER_PROC_H
#define CINDER_PROC_H

#include <stdint.h>
#include "store.h"

#define PROC_BEAT_MS STORE_BEAT_MS   /* loops wake at least this often to beat */

/* getopt_long entries of the common flags (their vals are 'r', 's', 'm', 'v'). */
#define PROC_OPTIONS                                                                           \
    {"run-dir", 1, 0, 'r'}, {"shm", 1, 0, 's'}, {"model-dir", 1, 0, 'm'}, {"verbose", 0, 0, 'v'}
#define PROC_USAGE "--run-dir DIR --shm NAME --model-dir DIR [--verbose]"

typedef struct {
    int id;                   /* proc_id */
    const char *run_dir, *shm, *model_dir;
    store st;
    uint32_t router_epoch;    /* the router's epoch as last seen */
    int opened;
} proc;

/* Names the log lines after process ID (proc_names). */
void proc_init(proc *p, int id);
/* One of the common flags from getopt_long (C its val): 1 taken, 0 not one of them. */
int proc_option(proc *p, int c, const char *arg);
/* Checks the common flags were given and maps the store; 0, or -1 with the reason logged. */
int proc_open(proc *p);
/* How SIGTERM and SIGINT stop a process. */
enum proc_stop {
    PROC_STOP_FLAG,     /* caught into proc_stopping(): a process that loops (its waits end
                           within PROC_BEAT_MS, so a stop is seen within one) */
    PROC_STOP_WAIT,     /* blocked in this thread and every thread it starts later (register
                           first), taken by proc_wait_stop: none is lost between a check and
                           a wait; for a process whose threads do the work */
    PROC_STOP_DEFAULT,  /* the default action (the process ends at once) until
                           proc_catch_stop(): a worker while it loads */
};

/* Registers in the store (pid, epoch), SIGPIPE ignored, stop signals as STOP says. */
void proc_register(proc *p, enum proc_stop stop);
/* From now on, stop signals are caught into proc_stopping() (after PROC_STOP_DEFAULT). */
void proc_catch_stop(void);
/* The stop signal that arrived, or 0. */
int proc_stopping(void);
/* With PROC_STOP_WAIT: blocks until a stop signal arrives. */
void proc_wait_stop(void);
/* 1 once the router has (re)started since the last call: its sockets must be re-opened. */
int proc_router_restarted(proc *p);
/* After the loop: the launcher-gone cleanup (store_orphan_cleanup), then unmaps the store. */
void proc_free(proc *p);

#endif
