/* test_launch.c - scripts/launch.sh, stop.sh and restart.sh against hostile or broken
 * surroundings (real processes; the shell parts through system()):
 *   run directory   another user's, or writable by group/others: refused; created private
 *                   (0700, its files 0600); a run.env or pid file in a directory that is not
 *                   safe is never sourced or trusted, and run.env's values are never
 *                   evaluated; a second launch on a directory in use is refused
 *   launcher death  a foreground launch.sh killed with -9 or -HUP takes its processes and the
 *                   shared memory with it; with --detach they outlive it
 *   supervisor      a worker that cannot load is restarted with growing gaps and then given
 *                   up on; /health stays 503 and requests get 503 at once meanwhile, and while
 *                   a restarted worker is still loading
 *   network         the HTTP port is on 127.0.0.1 by default (launch.sh and the tokenizer
 *                   binary); logs and sockets are out of other users' reach
 *   usage           --help prints a usage text; an option without its value, an unknown
 *                   --backend (or cuda without a CUDA build or GPU) or a malformed value is one
 *                   clear line and exit 2, before anything starts
 *   port            one in use is refused before anything starts; /health answers carry this
 *                   launch's id (X-Cinder-Launch), so another server is never taken for ours
 *   start failures  not ready within --ready-timeout: everything started is stopped
 * The checks that involve another user (chown, setpriv to "nobody", uid 65534) need root and
 * are skipped without it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../common/store.h"
#include "cluster.h"
#include "http_client.h"

#define NOBODY "setpriv --reuid=65534 --regid=65534 --clear-groups "
#define LAUNCH "scripts/launch.sh --backend cpu --threads 1 "

#define N_PROCS 5   /* the holder last: a launch with --no-holder has none (pid 0) */
static const char *const procs[N_PROCS] = {"tokenizer", "router", "worker", "detokenizer", "holder"};
static char T[128];            /* this test's scratch directory */
static int started[64], n_started; /* pids to kill if a test fails half way */
static char stop_dirs[8][256];
static int n_stop_dirs;

/* The first line of a command's output (static buffer, no newline). */
static const char *sh_line(const char *fmt, ...)
{
    static char line[1024];
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    line[0] = 0;
    FILE *p = popen(cmd, "r");
    if (p) {
        if (!fgets(line, sizeof line, p))
            line[0] = 0;
        pclose(p);
    }
    line[strcspn(line, "\n")] = 0;
    return line;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A live process (a zombie is dead). */
static int alive(int pid)
{
    char buf[512];
    const char *state;
    return pid > 0 && proc_stat_read(pid, buf, sizeof buf, &state) == 0 && state[0] != 'Z';
}

static void track(int pid)
{
    if (pid > 1 && n_started < 64)
        started[n_started++] = pid;
}

static void stop_at_end(const char *run_dir)
{
    if (n_stop_dirs < 8)
        snprintf(stop_dirs[n_stop_dirs++], sizeof stop_dirs[0], "%s", run_dir);
}

static int read_pid(const char *run_dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.pid", run_dir, name);
    FILE *f = fopen(path, "r");
    int pid = -1;
    if (f) {
        if (fscanf(f, "%d", &pid) != 1)
            pid = -1;
        fclose(f);
    }
    return pid;
}

/* The four processes' pids (each also tracked for the teardown); 0 if all were there. */
static int read_pids(const char *run_dir, int pids[N_PROCS])
{
    int missing = 0;
    for (int i = 0; i < N_PROCS; i++) {
        pids[i] = read_pid(run_dir, procs[i]);
        missing |= pids[i] <= 1 && i < 4;
        if (pids[i] > 1)
            track(pids[i]);
        else
            pids[i] = 0;
    }
    return missing ? -1 : 0;
}

static const char *shm_path(const char *run_dir)
{
    static char path[300];
    snprintf(path, sizeof path, "/dev/shm%s", sh_line("sed -n 's/^SHM=//p' %s/run.env", run_dir));
    return path;
}

static int health(int port)
{
    http_resp r;
    http_request(port, "GET", "/health", NULL, &r);
    int status = r.status;
    http_resp_free(&r);
    return status;
}

/* Starts a foreground launch.sh in the background (output in LOG) and waits until it says
 * it is ready; its pid, or -1. */
static int launch_fg(const char *run_dir, int port, const char *extra, const char *log)
{
    char pidf[256];
    snprintf(pidf, sizeof pidf, "%s/launch.pid", T);
    stop_at_end(run_dir);
    if (cluster_sh(LAUNCH "--port %d --run-dir %s %s > %s 2>&1 & echo $! > %s", port, run_dir, extra, log, pidf))
        return -1;
    int pid = atoi(sh_line("cat %s", pidf));
    track(pid);
    for (int k = 0; k < 900; k++) {
        if (!cluster_sh("grep -q 'cinder ready' %s", log))
            return pid;
        if (!alive(pid))
            break;
        usleep(100000);
    }
    cluster_sh("cat %s", log);
    return -1;
}

/* Waits up to SECONDS (times CINDER_TEST_TIME_SCALE: sanitized processes exit slowly) for
 * PIDS and SHM to be gone, and fails if any is left. */
static void expect_gone(const int *pids, int n, const char *shm, double seconds)
{
    seconds *= cluster_time_scale();
    double t0 = now_s();
    int left = 1;
    while (left && now_s() - t0 < seconds) {
        usleep(50000);
        left = shm && access(shm, F_OK) == 0;
        for (int i = 0; i < n; i++)
            left |= alive(pids[i]);
    }
    for (int i = 0; i < n; i++)
        if (alive(pids[i]))
            printf("# pid %d still alive after %.0f s\n", pids[i], seconds);
    if (shm && access(shm, F_OK) == 0)
        printf("# %s still there after %.0f s\n", shm, seconds);
    assert_false(left);
}

static int setup(void **state)
{
    cluster_use_build();
    snprintf(T, sizeof T, "/tmp/cinder-launch.%d", (int)getpid());
    n_started = n_stop_dirs = 0;
    return cluster_sh("rm -rf %s && mkdir -m 0755 %s", T, T) ? -1 : 0;
}

static int teardown(void **state)
{
    for (int i = 0; i < n_stop_dirs; i++)
        cluster_sh("scripts/stop.sh --run-dir %s > /dev/null 2>&1", stop_dirs[i]);
    for (int i = 0; i < n_started; i++)
        if (alive(started[i]))
            kill(started[i], SIGKILL);
    cluster_sh("rm -rf %s", T);
    return 0;
}

/* ---- run directory */

static void need_root(void)
{
    if (geteuid() != 0) {
        printf("# skipped: needs root (another user's files)\n");
        skip();
    }
}

static void expect_refused(const char *run_dir, const char *why)
{
    int port = cluster_free_port();
    stop_at_end(run_dir);
    int rc = cluster_sh(LAUNCH "--detach --port %d --run-dir %s > %s/out 2> %s/err", port, run_dir, T, T);
    printf("# %s: launch.sh exit %d, stderr: %s\n", why, rc, sh_line("cat %s/err", T));
    assert_int_not_equal(rc, 0);
    assert_string_equal(sh_line("wc -l < %s/err", T), "1"); /* one clear line */
    assert_int_equal(cluster_sh("grep -qF -- '%s' %s/err", run_dir, T), 0);
    assert_int_not_equal(access(sh_line("printf %%s %s/run.env", run_dir), F_OK), 0);
    assert_int_equal(health(port), -1); /* nothing started */
}

static void test_run_dir_not_ours_refused(void **state)
{
    need_root();
    char d[256];
    snprintf(d, sizeof d, "%s/nobodys", T);
    assert_int_equal(cluster_sh("mkdir -m 0700 %s && chown 65534:65534 %s", d, d), 0);
    expect_refused(d, "owned by nobody");
    snprintf(d, sizeof d, "%s/world-writable", T);
    assert_int_equal(cluster_sh("mkdir %s && chmod 0777 %s", d, d), 0);
    expect_refused(d, "mode 0777");
    snprintf(d, sizeof d, "%s/group-writable", T);
    assert_int_equal(cluster_sh("mkdir %s && chmod 0770 %s", d, d), 0);
    expect_refused(d, "mode 0770");
    snprintf(d, sizeof d, "%s/under-nobodys/run", T); /* a parent another user can rename */
    assert_int_equal(cluster_sh("mkdir -p -m 0700 %s && chown 65534 %s/under-nobodys", d, T), 0);
    expect_refused(d, "inside a directory of nobody's");
}

/* stop.sh and restart.sh on a directory another user controls: nothing of it is executed,
 * and no pid found there is signalled; in a safe directory run.env's values stay text. */
static void test_run_env_never_sourced(void **state)
{
    need_root();
    char d[256];
    snprintf(d, sizeof d, "%s/evil", T);
    int victim = atoi(sh_line("sleep 120 > /dev/null 2>&1 & echo $!"));
    track(victim);
    assert_int_equal(cluster_sh("mkdir -m 0700 %s && printf '%%s\\n' 'BIN=/nonexistent' 'SHM=/nothing'"
                        " 'touch %s/pwned-line' 'PORT=$(touch %s/pwned-subst)' 'HOST=`touch %s/pwned-tick`'"
                        " > %s/run.env && echo %d > %s/tokenizer.pid && echo %d > %s/worker.pid"
                        " && chown -R 65534:65534 %s",
                        d, T, T, T, d, victim, d, victim, d, d), 0);
    int rc_stop = cluster_sh("scripts/stop.sh --run-dir %s 2> %s/err.stop", d, T);
    int rc_restart = cluster_sh("scripts/restart.sh --run-dir %s worker 2> %s/err.restart", d, T);
    printf("# stop.sh: exit %d: %s\n", rc_stop, sh_line("cat %s/err.stop", T));
    printf("# restart.sh: exit %d: %s\n", rc_restart, sh_line("cat %s/err.restart", T));
    assert_int_equal(cluster_sh("ls %s/pwned-* 2>/dev/null | grep -q .", T), 1); /* nothing ran */
    assert_true(alive(victim));                                        /* nothing was killed */
    assert_int_not_equal(rc_stop, 0);
    assert_int_not_equal(rc_restart, 0);
    assert_int_equal(cluster_sh("grep -q 'refusing' %s/err.stop && grep -q 'refusing' %s/err.restart", T, T), 0);

    /* the same run.env, ours, in a directory of ours: values are taken as text */
    assert_int_equal(cluster_sh("chown -R 0:0 %s && chmod 600 %s/run.env && rm -f %s/*.pid", d, d, d), 0);
    cluster_sh("scripts/stop.sh --run-dir %s > /dev/null 2>&1", d);
    cluster_sh("scripts/restart.sh --run-dir %s worker > /dev/null 2>&1", d);
    assert_int_equal(cluster_sh("ls %s/pwned-* 2>/dev/null | grep -q .", T), 1);
    assert_true(alive(victim));
    kill(victim, SIGKILL);
}

static void test_run_dir_private(void **state)
{
    char d[256];
    snprintf(d, sizeof d, "%s/fresh/run", T);
    int port = cluster_free_port();
    stop_at_end(d);
    assert_int_equal(cluster_sh(LAUNCH "--detach --port %d --run-dir %s > /dev/null", port, d), 0);
    int pids[N_PROCS];
    read_pids(d, pids);
    assert_string_equal(sh_line("stat -c %%a %s", d), "700");
    const char *loose = sh_line("find %s -mindepth 1 -perm /077 | head -n 3 | tr '\\n' ' '", d);
    printf("# open to group/others: '%s'\n", loose);
    assert_string_equal(loose, "");
    assert_int_equal(cluster_sh("ls %s/*.log %s/run.env %s/*.pid %s/*.ipc > /dev/null", d, d, d, d), 0);
    assert_int_equal(cluster_sh("scripts/stop.sh --run-dir %s", d), 0);
    expect_gone(pids, N_PROCS, NULL, 10);
}

static void test_second_launch_refused(void **state)
{
    char d[256];
    snprintf(d, sizeof d, "%s/shared", T);
    int port1 = cluster_free_port();
    stop_at_end(d);
    assert_int_equal(cluster_sh(LAUNCH "--detach --port %d --run-dir %s > /dev/null", port1, d), 0);
    int pids[N_PROCS];
    assert_int_equal(read_pids(d, pids), 0);
    int port2 = cluster_free_port();
    int rc = cluster_sh(LAUNCH "--detach --port %d --run-dir %s > /dev/null 2> %s/err", port2, d, T);
    printf("# second launch: exit %d: %s\n", rc, sh_line("cat %s/err", T));
    int now[N_PROCS];
    read_pids(d, now); /* whatever it started: stopped at the end */
    assert_int_not_equal(rc, 0);
    assert_int_equal(cluster_sh("grep -q 'in use' %s/err", T), 0);
    assert_int_equal(health(port2), -1);
    assert_int_equal(health(port1), 200); /* the first one goes on, and stop.sh still stops it */
    for (int i = 0; i < N_PROCS; i++)
        assert_int_equal(now[i], pids[i]);
    assert_int_equal(cluster_sh("scripts/stop.sh --run-dir %s", d), 0);
    expect_gone(pids, N_PROCS, NULL, 10);
}

/* ---- the launcher's death */

static void launcher_dies(const char *sig, const char *extra, int expect_supervisor)
{
    char d[256], log[256];
    snprintf(d, sizeof d, "%s/run", T);
    snprintf(log, sizeof log, "%s/launch.log", T);
    int port = cluster_free_port();
    int launcher = launch_fg(d, port, extra, log);
    assert_true(launcher > 0);
    int pids[N_PROCS + 1];
    assert_int_equal(read_pids(d, pids), 0);
    assert_true(pids[4] > 1);   /* the holder */
    pids[N_PROCS] = pids[0];
    for (int k = 0; expect_supervisor && k < 50 && (pids[N_PROCS] = read_pid(d, "supervisor")) <= 1; k++)
        usleep(100000); /* written once ready */
    track(pids[N_PROCS]);
    assert_true(pids[N_PROCS] > 1);
    char shm[300], hold[310];
    snprintf(shm, sizeof shm, "%s", shm_path(d));
    snprintf(hold, sizeof hold, "%s.hold", shm);
    assert_int_equal(access(shm, F_OK), 0);
    assert_int_equal(access(hold, F_OK), 0);
    assert_int_equal(health(port), 200);
    assert_int_equal(cluster_sh("kill -%s %d", sig, launcher), 0);
    expect_gone(pids, N_PROCS + 1, shm, 5); /* its processes stop and the shared memory goes */
    assert_int_not_equal(access(hold, F_OK), 0);   /* the holder's region too */
    for (int k = 0; k < SCALED_MS(50) && alive(launcher); k++) /* it ends just after stop.sh removed them */
        usleep(100000);
    assert_false(alive(launcher));
    assert_int_equal(health(port), -1);
    for (int i = 0; i < N_PROCS; i++) { /* and no pid file is left to mislead stop.sh */
        char path[512];
        snprintf(path, sizeof path, "%s/%s.pid", d, procs[i]);
        assert_int_not_equal(access(path, F_OK), 0);
    }
}

static void test_launcher_kill9(void **state) { launcher_dies("KILL", "--supervise", 1); }
static void test_launcher_hup(void **state) { launcher_dies("HUP", "", 0); }

static void test_detach_outlives(void **state)
{
    char d[256];
    snprintf(d, sizeof d, "%s/run", T);
    int port = cluster_free_port();
    stop_at_end(d);
    assert_int_equal(cluster_sh(LAUNCH "--detach --port %d --run-dir %s > /dev/null", port, d), 0);
    int pids[N_PROCS];
    assert_int_equal(read_pids(d, pids), 0);
    sleep(3); /* the launcher is gone: they stay */
    for (int i = 0; i < N_PROCS; i++)
        assert_true(alive(pids[i]));
    assert_int_equal(access(shm_path(d), F_OK), 0);
    assert_int_equal(health(port), 200);
    assert_int_equal(cluster_sh("scripts/stop.sh --run-dir %s", d), 0);
    expect_gone(pids, N_PROCS, NULL, 10);
}

/* ---- the supervisor and a worker that cannot load */

static double clock_of(const char *line) /* "HH:MM:SS.mmm ..." -> seconds */
{
    int h, m;
    double s;
    return sscanf(line, "%d:%d:%lf", &h, &m, &s) == 3 ? h * 3600 + m * 60 + s : -1;
}

static void test_supervisor_backoff(void **state)
{
    char d[256], log[256], model[256];
    snprintf(d, sizeof d, "%s/run", T);
    snprintf(log, sizeof log, "%s/launch.log", T);
    snprintf(model, sizeof model, "%s/model", T);
    assert_int_equal(cluster_sh("mkdir %s && for f in models/stories15M/*; do ln -s \"$(realpath $f)\" %s/; done",
                        model, model), 0);
    int port = cluster_free_port();
    char extra[512];
    /* no holder: the worker itself loads the weights (with one, a restarted worker would
       attach to the weights the holder loaded at start and never read the broken file) */
    snprintf(extra, sizeof extra, "--supervise --no-holder --model-dir %s", model);
    int launcher = launch_fg(d, port, extra, log);
    assert_true(launcher > 0);
    int pids[N_PROCS];
    assert_int_equal(read_pids(d, pids), 0);
    /* the weights get corrupted under the running server, then the worker dies */
    assert_int_equal(cluster_sh("head -c 4096 models/stories15M/model.safetensors > %s/w && mv -f %s/w %s/model.safetensors",
                        model, model, model), 0);
    assert_int_equal(kill(pids[2], SIGKILL), 0);
    usleep(200000);
    const char *body = "{\"inputs\":\"Once upon a time\",\"parameters\":{\"max_new_tokens\":4}}";
    double t0 = now_s(), last_post = 0, worst = 0;
    int n200 = 0, gave_up = 0, n_posts = 0, n_post_not_503 = 0;
    while (now_s() - t0 < 45) {
        if (health(port) == 200)
            n200++;
        if (now_s() - last_post > 0.5) {
            http_resp r;
            double t = now_s();
            http_request(port, "POST", "/generate", body, &r);
            double took = now_s() - t;
            worst = took > worst ? took : worst;
            n_posts++;
            n_post_not_503 += r.status != 503;
            http_resp_free(&r);
            last_post = now_s();
        }
        if (!cluster_sh("grep -q 'giving up' %s/supervisor.log 2>/dev/null", d)) {
            gave_up = 1;
            break;
        }
        usleep(100000);
    }
    cluster_sh("cat %s/supervisor.log", d);
    printf("# %.1f s: /health 200 %d times; %d requests, %d not 503, slowest %.2f s\n", now_s() - t0,
           n200, n_posts, n_post_not_503, worst);
    assert_true(gave_up);
    assert_int_equal(n200, 0);
    assert_int_equal(n_post_not_503, 0);
    assert_true(worst < 1.0);
    assert_int_equal(cluster_sh("grep -q 'giving up' %s", log), 0); /* on stderr too */

    /* bounded restarts, each waiting longer than the one before: a line's time is when the
       worker exited; the next line's time less that run's length ("exited after") is when
       the restart began, which must come no earlier than the announced delay. (Comparing
       raw gaps would measure start-up times too, which vary under load or a sanitizer.) */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "grep -e 'worker.*restarting in' -e 'giving up on worker' %s/supervisor.log", d);
    FILE *p = popen(cmd, "r");
    char line[512];
    double prev_t = -1, prev_delay = 0, first_delay = 0, last_delay = 0, shortest_wait = 1e9;
    int n = 0;
    while (p && fgets(line, sizeof line, p)) {
        const char *in = strstr(line, "restarting in "), *ran = strstr(line, "exited after ");
        double t = clock_of(line), delay = in ? atof(in + 14) : 1e9; /* the give-up line: last */
        double run_s = ran ? atof(ran + 13) : 0;
        assert_true(t >= 0);
        assert_true(delay > prev_delay); /* the announced delays grow */
        if (prev_t >= 0) {
            double waited = t - run_s - prev_t;
            assert_true(waited > prev_delay - 0.05);
            shortest_wait = waited < shortest_wait ? waited : shortest_wait;
        }
        first_delay = first_delay ? first_delay : delay;
        prev_t = t;
        prev_delay = delay;
        n += in != NULL;
        last_delay = in ? delay : last_delay;
    }
    if (p)
        pclose(p);
    printf("# %d restarts, delays from %.2f s to %.2f s; shortest real wait %.2f s\n", n,
           first_delay, last_delay, shortest_wait);
    assert_true(n >= 3 && n <= 6);
    assert_true(last_delay >= 4 * first_delay); /* exponential: doubling from 3 restarts on */

    /* given up: it stays down, the others serve 503 at once, nothing more is restarted */
    sleep(2);
    assert_int_equal(cluster_sh("test $(grep -c 'worker.*restarting in' %s/supervisor.log) = %d", d, n), 0);
    assert_int_equal(health(port), 503);
    http_resp r;
    double t = now_s();
    http_request(port, "POST", "/generate", body, &r);
    assert_int_equal(r.status, 503);
    assert_true(now_s() - t < 1.0);
    http_resp_free(&r);
    assert_true(alive(pids[0]) && alive(pids[1]) && alive(pids[3]) && alive(launcher));

    /* the model fixed, restart.sh brings the worker back */
    assert_int_equal(cluster_sh("ln -sf \"$(realpath models/stories15M/model.safetensors)\" %s/model.safetensors", model), 0);
    assert_int_equal(cluster_sh("scripts/restart.sh --run-dir %s worker", d), 0);
    track(read_pid(d, "worker"));
    int status = 0;
    for (int k = 0; k < 300 && (status = health(port)) != 200; k++)
        usleep(100000);
    assert_int_equal(status, 200);
    http_request(port, "POST", "/generate", body, &r);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);
    kill(launcher, SIGTERM);
    expect_gone(pids, N_PROCS, NULL, 10);
}

/* A worker still loading (its weights a FIFO that nobody writes: open() blocks; no holder, so
 * the worker loads them) is not
 * ready, though it runs and beats: /health 503, requests answered 503 at once instead of
 * held until --worker-wait (the worker before it had left its KV figure in the store). */
static void test_loading_worker_not_ready(void **state)
{
    char d[256], model[256];
    snprintf(d, sizeof d, "%s/run", T);
    snprintf(model, sizeof model, "%s/model", T);
    assert_int_equal(cluster_sh("mkdir %s && for f in models/stories15M/*; do ln -s \"$(realpath $f)\" %s/; done",
                        model, model), 0);
    int port = cluster_free_port();
    stop_at_end(d);
    assert_int_equal(cluster_sh(LAUNCH "--detach --no-holder --worker-wait 5 --port %d --run-dir %s --model-dir %s > /dev/null",
                        port, d, model), 0);
    int pids[N_PROCS];
    assert_int_equal(read_pids(d, pids), 0);
    assert_int_equal(health(port), 200);
    assert_int_equal(cluster_sh("rm %s/model.safetensors && mkfifo %s/model.safetensors", model, model), 0);
    assert_int_equal(cluster_sh("scripts/restart.sh --run-dir %s worker", d), 0);
    int loading = read_pid(d, "worker");
    track(loading);
    const char *body = "{\"inputs\":\"Once upon a time\",\"parameters\":{\"max_new_tokens\":4}}";
    int n200 = 0, n_not_503 = 0;
    double worst = 0, t0 = now_s();
    while (now_s() - t0 < 3) {
        n200 += health(port) == 200;
        http_resp r;
        double t = now_s();
        http_request(port, "POST", "/generate", body, &r);
        worst = now_s() - t > worst ? now_s() - t : worst;
        n_not_503 += r.status != 503;
        http_resp_free(&r);
        usleep(50000);
    }
    printf("# worker loading: /health 200 %d times, %d requests not 503, slowest %.2f s\n", n200,
           n_not_503, worst);
    assert_true(alive(loading)); /* still loading */
    assert_int_equal(n200, 0);
    assert_int_equal(n_not_503, 0);
    assert_true(worst < 1.0);
    /* the weights back, a new worker serves */
    assert_int_equal(cluster_sh("ln -sf \"$(realpath models/stories15M/model.safetensors)\" %s/model.safetensors", model), 0);
    assert_int_equal(cluster_sh("scripts/restart.sh --run-dir %s worker", d), 0);
    track(read_pid(d, "worker"));
    int status = 0;
    for (int k = 0; k < 300 && (status = health(port)) != 200; k++)
        usleep(100000);
    assert_int_equal(status, 200);
    assert_int_equal(cluster_sh("scripts/stop.sh --run-dir %s", d), 0);
}

/* ---- network and other users */

static void test_loopback_by_default(void **state)
{
    int port = cluster_free_port();
    char d[256];
    snprintf(d, sizeof d, "%s", sh_line(LAUNCH "--detach --port %d | sed -n 's/.*(run dir \\(.*\\))$/\\1/p'", port));
    printf("# run dir %s\n", d);
    assert_true(d[0] == '/');
    stop_at_end(d);
    int pids[N_PROCS];
    assert_int_equal(read_pids(d, pids), 0);
    assert_int_equal(health(port), 200);
    const char *listen = sh_line("ss -Hltn 'sport = :%d' | awk '{print $4}' | tr '\\n' ' '", port);
    printf("# listening on %s\n", listen);
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%d ", port);
    assert_string_equal(listen, want);
    /* the default run directory, its logs and sockets are the launching user's alone */
    assert_string_equal(sh_line("stat -c %%a %s", d), "700");
    assert_string_equal(sh_line("find %s -mindepth 1 -perm /077 | head -n 3", d), "");
    if (geteuid() == 0) {
        assert_int_equal(cluster_sh(NOBODY "true"), 0);
        assert_int_not_equal(cluster_sh(NOBODY "cat %s/tokenizer.log > /dev/null 2>&1", d), 0);
        assert_int_not_equal(cluster_sh(NOBODY "ls %s > /dev/null 2>&1", d), 0);
        assert_int_not_equal(cluster_sh(NOBODY "test -e %s/router.ipc", d), 0);
    }

    /* the tokenizer binary's own default, without --host */
    assert_int_equal(kill(pids[0], SIGTERM), 0);
    for (int k = 0; k < 100 && alive(pids[0]); k++)
        usleep(50000);
    int port2 = cluster_free_port();
    const char *bin = getenv("CINDER_BIN") ? getenv("CINDER_BIN") : "build/bin";
    int tok = atoi(sh_line("%s/tokenizer --run-dir %s --shm \"$(sed -n 's/^SHM=//p' %s/run.env)\""
                           " --model-dir models/stories15M --port %d > %s/tok.log 2>&1 & echo $!",
                           bin, d, d, port2, T));
    track(tok);
    for (int k = 0; k < 100 && cluster_sh("ss -Hltn 'sport = :%d' | grep -q .", port2); k++)
        usleep(100000);
    listen = sh_line("ss -Hltn 'sport = :%d' | awk '{print $4}' | tr '\\n' ' '", port2);
    printf("# the tokenizer alone listens on %s\n", listen);
    snprintf(want, sizeof want, "127.0.0.1:%d ", port2);
    assert_string_equal(listen, want);
    kill(tok, SIGTERM);
    assert_int_equal(cluster_sh("scripts/stop.sh --run-dir %s && rm -rf %s", d, d), 0);
}

/* ---- usage */

/* launch.sh ARGS: exit 2 with one line on stderr holding WANT, and nothing started */
static void expect_usage_error(const char *args, const char *want)
{
    int rc = cluster_sh("scripts/launch.sh %s > %s/out 2> %s/err", args, T, T);
    printf("# launch.sh %s: exit %d: %s\n", args, rc, sh_line("cat %s/err", T));
    assert_int_equal(rc, 2);
    assert_string_equal(sh_line("wc -l < %s/err", T), "1");
    assert_int_equal(cluster_sh("grep -qF -- '%s' %s/err", want, T), 0);
    assert_string_equal(sh_line("cat %s/out", T), "");
}

static void test_usage(void **state)
{
    assert_int_equal(cluster_sh("scripts/launch.sh --help > %s/out 2>&1", T), 0);
    assert_int_equal(cluster_sh("head -n 1 %s/out | grep -q '^usage: '", T), 0);
    const char *documented[] = {"--run-dir", "--host", "--ready-timeout", "--api-key", "--allowed-origins",
                                "--served-model-name", "--backend"};
    for (int i = 0; i < 7; i++)
        assert_int_equal(cluster_sh("grep -q -- '%s' %s/out", documented[i], T), 0);
    assert_int_not_equal(cluster_sh("grep -q '^#' %s/out", T), 0); /* not lines of the script */
    const char *opts[] = {"--port", "--run-dir", "--model-dir", "--ready-timeout", "--api-key"};
    for (int i = 0; i < 5; i++) {
        char want[64];
        snprintf(want, sizeof want, "%s needs a value", opts[i]);
        expect_usage_error(opts[i], want);
    }
    expect_usage_error("--port 8000 --backend tpu", "--backend is auto, cpu or cuda, not");
    expect_usage_error("--port abc", "PORT must be a whole number");
    expect_usage_error("--port 70000", "--port must be 1 to 65535");
    expect_usage_error("--ready-timeout 0", "--ready-timeout must be at least 1 second");
    expect_usage_error("--policy lifo", "--policy is fcfs, spf or lpm");
    expect_usage_error("--load-format gguf", "--load-format is auto or dummy");
    expect_usage_error("--bogus", "unknown option --bogus");
    /* every documented option is taken: each line of the text that starts with one, given a
       value where it takes one, gets past the parser (then a busy port stops it) */
    int port = cluster_free_port(), fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 128), 0);
    int rc = cluster_sh("scripts/launch.sh --help | sed -n 's/^  \\(--[a-z-]*\\)\\( [A-Z]\\)*.*/\\1\\2/p' > %s/opts", T);
    assert_int_equal(rc, 0);
    FILE *f = fopen(sh_line("printf %%s %s/opts", T), "r");
    char line[128];
    int n = 0;
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *sp = strchr(line, ' ');
        const char *value = "";
        if (sp) { /* a sensible value for it */
            *sp = 0;
            value = !strcmp(line, "--backend") ? "cpu" : !strcmp(line, "--load-format") ? "auto"
                  : !strcmp(line, "--policy") ? "fcfs" : !strcmp(line, "--dtype") ? "bf16"
                  : !strcmp(line, "--kv-cache-dtype") ? "auto"
                  : !strcmp(line, "--quantization") ? "fp8 --no-holder"   /* FP8: no holder */
                  : !strcmp(line, "--port") || !strcmp(line, "--host") || !strcmp(line, "--run-dir") ? NULL : "1";
            if (!value)
                continue;
        }
        rc = cluster_sh("scripts/launch.sh --port %d %s %s > /dev/null 2> %s/err", port, line, value, T);
        if (rc != 1 || cluster_sh("grep -q 'is in use' %s/err", T))
            printf("# %s %s: exit %d: %s\n", line, value, rc, sh_line("cat %s/err", T));
        assert_int_equal(rc, 1);
        assert_int_equal(cluster_sh("grep -q 'is in use' %s/err", T), 0);
        n++;
    }
    if (f)
        fclose(f);
    close(fd);
    printf("# %d documented options taken\n", n);
    assert_true(n >= 25);
}

/* --backend cuda (or gpu) without a CUDA build or a GPU: one line, exit 2, no CPU fallback */
static void test_backend_cuda_refused(void **state)
{
    if (!cluster_sh("ls /dev/nvidia[0-9]* > /dev/null 2>&1")) {
        printf("# skipped: this machine has a GPU\n");
        skip();
    }
    char args[128];
    snprintf(args, sizeof args, "--port %d --backend cuda", cluster_free_port());
    expect_usage_error(args, "--backend cuda");
    snprintf(args, sizeof args, "--port %d --backend gpu", cluster_free_port());
    expect_usage_error(args, "--backend cuda");
}

/* A port in use: refused before anything starts (no run directory, no process) */
static void test_busy_port(void **state)
{
    int port = cluster_free_port(), fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 128), 0);
    char d[256];
    snprintf(d, sizeof d, "%s/busy", T);
    stop_at_end(d);
    int rc = cluster_sh(LAUNCH "--detach --port %d --run-dir %s > %s/out 2> %s/err", port, d, T, T);
    printf("# a listener on the port: exit %d: %s\n", rc, sh_line("cat %s/err", T));
    assert_int_equal(rc, 1);
    assert_string_equal(sh_line("wc -l < %s/err", T), "1");
    assert_int_equal(cluster_sh("grep -q 'port %d is in use' %s/err", port, T), 0);
    assert_int_not_equal(access(d, F_OK), 0); /* nothing started, not even the run directory */
    assert_int_not_equal(cluster_sh("grep -q 'cinder ready' %s/out", T), 0);
    close(fd);

    /* a cinder server on the port is no exception; the one there goes on */
    snprintf(d, sizeof d, "%s/first", T);
    stop_at_end(d);
    assert_int_equal(cluster_sh(LAUNCH "--detach --port %d --run-dir %s > %s/out", port, d, T), 0);
    assert_int_equal(cluster_sh("grep -q '^launch.sh: loading weights: ' %s/out", T), 0); /* the loader's progress */
    int pids[N_PROCS];
    assert_int_equal(read_pids(d, pids), 0);
    http_resp r;
    http_request(port, "GET", "/health", NULL, &r); /* its answers name its launch */
    assert_int_equal(r.status, 200);
    char want[128];
    snprintf(want, sizeof want, "X-Cinder-Launch: %s", sh_line("sed -n 's/^LAUNCH_ID=//p' %s/run.env", d));
    assert_true(strlen(want) > 30);
    assert_non_null(strstr(r.headers, want));
    http_resp_free(&r);
    char d2[256];
    snprintf(d2, sizeof d2, "%s/second", T);
    rc = cluster_sh(LAUNCH "--detach --port %d --run-dir %s > %s/out 2> %s/err", port, d2, T, T);
    assert_int_equal(rc, 1);
    assert_int_equal(cluster_sh("grep -q 'is in use' %s/err", T), 0);
    assert_int_not_equal(access(d2, F_OK), 0);
    assert_int_equal(health(port), 200);
    for (int i = 0; i < N_PROCS; i++)
        assert_true(alive(pids[i]));
    assert_int_equal(cluster_sh("scripts/stop.sh --run-dir %s", d), 0);
    expect_gone(pids, N_PROCS, NULL, 10);
}

/* Live processes with the arguments "--run-dir" RUN_DIR */
static int processes_of(const char *run_dir)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d))) {
        char path[300], args[4096];
        snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
        FILE *f = atoi(e->d_name) > 0 ? fopen(path, "r") : NULL;
        size_t k = f ? fread(args, 1, sizeof args - 1, f) : 0;
        if (f)
            fclose(f);
        args[k] = 0;
        for (size_t i = 0; i < k; i += strlen(args + i) + 1)
            if (!strcmp(args + i, "--run-dir") && i + 10 < k && !strcmp(args + i + 10, run_dir) &&
                alive(atoi(e->d_name)))
                n++;
    }
    if (d)
        closedir(d);
    return n;
}

/* Not ready within --ready-timeout (the weights a FIFO nobody writes: the worker never loads):
 * launch.sh says so and stops every process it started, the shared memory too */
static void test_ready_timeout_stops_all(void **state)
{
    char d[256], model[256];
    snprintf(d, sizeof d, "%s/run", T);
    snprintf(model, sizeof model, "%s/model", T);
    assert_int_equal(cluster_sh("mkdir %s && for f in models/stories15M/*; do ln -s \"$(realpath $f)\" %s/; done"
                        " && rm %s/model.safetensors && mkfifo %s/model.safetensors", model, model, model, model), 0);
    int port = cluster_free_port();
    stop_at_end(d);
    double t0 = now_s();
    int rc = cluster_sh(LAUNCH "--detach --ready-timeout 3 --port %d --run-dir %s --model-dir %s > %s/out 2> %s/err",
                port, d, model, T, T);
    double took = now_s() - t0;
    printf("# exit %d after %.1f s: %s\n", rc, took, sh_line("cat %s/err", T));
    assert_int_equal(rc, 1);
    assert_true(took >= 3 && took < 20);
    assert_int_equal(cluster_sh("grep -q 'not ready after 3 s' %s/err", T), 0);
    /* every process it started is gone (stop.sh removed their pid files: look for them by
       their arguments) and so is the shared memory */
    int left = processes_of(d);
    printf("# processes of the launch left: %d\n", left);
    assert_int_equal(left, 0);
    assert_int_not_equal(access(shm_path(d), F_OK), 0);
    assert_int_equal(health(port), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backend_cuda_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy_port, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ready_timeout_stops_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_dir_not_ours_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_env_never_sourced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_dir_private, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_launch_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_launcher_kill9, setup, teardown),
        cmocka_unit_test_setup_teardown(test_launcher_hup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detach_outlives, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loopback_by_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loading_worker_not_ready, setup, teardown),
        cmocka_unit_test_setup_teardown(test_supervisor_backoff, setup, teardown),
    };
    if (getenv("TEST_FILTER")) /* e.g. TEST_FILTER='test_launcher_*' */
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    return cmocka_run_group_tests_name("e2e_launch", tests, NULL, NULL);
}
