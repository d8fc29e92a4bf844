/* cluster.h - starts and stops a real cinder launch (scripts/launch.sh) for end-to-end tests.
 *
 * Each test binary gets its own run directory, shared-memory name and free loopback port.
 * Tests run from the repository root; the default model must be set up (make test does it).
 */
#ifndef CINDER_CLUSTER_H
#define CINDER_CLUSTER_H

typedef struct {
    char run_dir[256];
    int port;
} cluster;

/* A free loopback TCP port. */
int cluster_free_port(void);
/* Points CINDER_BIN (launch.sh's binaries) at $BUILD/bin when BUILD is set and CINDER_BIN
 * is not (make test passes BUILD). */
void cluster_use_build(void);
/* How much slower than a plain build the processes under test run: CINDER_TEST_TIME_SCALE
 * (1 by default; `make SANITIZE=thread test` sets it). Time bounds that measure how fast the
 * server is scale by it; bounds that check the server's own deadlines do not need to. */
int cluster_time_scale(void);
#define SCALED_MS(ms) ((ms) * cluster_time_scale())
/* Milliseconds on the monotonic clock. */
double cluster_now_ms(void);
/* A shell command that prints `shm-tool stat` of the launch in RUN_DIR (run.env is read,
 * never sourced); a static buffer. */
const char *cluster_shm_stat_cmd(const char *run_dir);

/* The default model has no chat template: tests that chat launch with this one. */
#define CLUSTER_CHAT_TEMPLATE "--chat-template tests/data/chat/test_template.jinja"

/* Launches with the CPU backend plus EXTRA launch.sh arguments (may be ""); 0 or -1. */
int cluster_start(cluster *c, const char *extra);
void cluster_stop(cluster *c);
/* One figure of `shm-tool stat` (active_slots, n_free_blocks, kv_limit_blocks, n_preempted,
 * worker_steps, ...), or -1. */
double cluster_stat(const cluster *c, const char *key);
/* Runs the printf-formatted shell command; its exit status (128 + N: killed by signal N). */
int cluster_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The value of the /metrics sample NAME (whatever its labels: model_name), or -1. */
double cluster_metric(const cluster *c, const char *name);
/* Slots the tokenizer still holds, or -1. */
int cluster_active_slots(const cluster *c);
/* Restarts PROCESS, stopping the old one with SIG ("TERM" or "KILL"). */
int cluster_restart(const cluster *c, const char *process, const char *sig);

#endif
