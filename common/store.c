/* store.c - create, map and unmap the shared-memory request store (see store.h). */
#include "store.h"
#include "log.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <signal.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *const proc_names[N_PROC] = {"tokenizer", "router", "worker", "detokenizer", "holder"};
const char *const finish_names[] = {"", "length", "stop", "abort", "error"};

uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

static int store_map(store *s, const char *name, int fd, size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return -errno;
    s->hdr = p;
    s->map_bytes = bytes;
    snprintf(s->name, sizeof s->name, "%s", name);
    return 0;
}

int store_create(store *s, const char *name, const store_layout *l)
{
    if (l->n_slots == 0 || l->max_seq_len == 0 || l->block_size == 0)
        return -EINVAL;
    uint32_t max_blocks = (l->max_seq_len + l->block_size - 1) / l->block_size;
    /* tokens and logprobs, the top ids and logprobs, the block table */
    size_t slot_bytes = align64(sizeof(slot_hdr) + (size_t)l->max_seq_len * 8 +
                                (size_t)l->max_seq_len * STORE_TOP_LOGPROBS * 8 + (size_t)max_blocks * 4);
    size_t total = align64(sizeof(store_hdr)) + (size_t)l->n_slots * slot_bytes;
    shm_unlink(name);
    int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0)
        return -errno;
    int rc = ftruncate(fd, (off_t)total) ? -errno : store_map(s, name, fd, total);
    close(fd);
    if (rc) {
        shm_unlink(name);
        return rc;
    }
    store_hdr *h = s->hdr;
    memset(h, 0, sizeof *h); /* the slots are zero already: SLOT_FREE */
    h->version = STORE_VERSION;
    h->n_slots = l->n_slots;
    h->max_seq_len = l->max_seq_len;
    h->block_size = l->block_size;
    h->max_blocks_per_seq = max_blocks;
    h->vocab_size = l->vocab_size;
    h->n_top_logprobs = STORE_TOP_LOGPROBS;
    h->slot_bytes = slot_bytes;
    h->total_bytes = total;
    h->launcher_pid = l->launcher_pid;
    h->launcher_start = l->launcher_start;
    h->with_holder = l->with_holder;
    atomic_store(&h->next_req_id, 1);
    atomic_thread_fence(memory_order_release);
    h->magic = STORE_MAGIC;
    return 0;
}

int store_open(store *s, const char *name)
{
    int fd = shm_open(name, O_RDWR, 0600);
    if (fd < 0)
        return -errno;
    struct stat st;
    int rc = fstat(fd, &st) ? -errno : 0;
    if (!rc && (size_t)st.st_size < sizeof(store_hdr))
        rc = -EPROTO;
    if (!rc)
        rc = store_map(s, name, fd, (size_t)st.st_size);
    close(fd);
    if (rc)
        return rc;
    const store_hdr *h = s->hdr;
    if (h->magic != STORE_MAGIC || h->version != STORE_VERSION || h->total_bytes != s->map_bytes) {
        store_close(s);
        return -EPROTO;
    }
    return 0;
}

void store_close(store *s)
{
    if (s->hdr)
        munmap(s->hdr, s->map_bytes);
    s->hdr = NULL;
}

int store_unlink(const char *name) { return shm_unlink(name) ? -errno : 0; }

int store_holder_name(const char *name, char *out, size_t n)
{
    int k = snprintf(out, n, "%s.hold", name);
    return k < 0 || (size_t)k >= n || k > NAME_MAX ? -ENAMETOOLONG : 0;
}

void store_register(store *s, int proc)
{
    atomic_store(&s->hdr->pid[proc], (int32_t)getpid());
    atomic_fetch_add(&s->hdr->epoch[proc], 1);
    store_heartbeat(s, proc);
}

static atomic_int orphaned;

int store_orphaned(void) { return atomic_load(&orphaned); }

void store_heartbeat(store *s, int proc)
{
    atomic_store_explicit(&s->hdr->hb_ms[proc], now_ms(), memory_order_release);
    if (s->hdr->launcher_pid && !atomic_load(&orphaned) && store_launcher_gone(s) &&
        !atomic_exchange(&orphaned, 1)) {
        LOG_WARN("the launcher (launch.sh, pid %d) is gone: stopping", (int)s->hdr->launcher_pid);
        kill(getpid(), SIGTERM); /* the process's own clean stop, from any thread */
    }
}

int proc_stat_read(int pid, char *buf, size_t n, const char **fields)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -errno;
    size_t k = fread(buf, 1, n - 1, f);
    fclose(f);
    buf[k] = 0;
    const char *p = strrchr(buf, ')'); /* "pid (comm) state ...": comm may hold anything */
    if (!p || p[1] != ' ')
        return -EPROTO;
    *fields = p + 2;
    return 0;
}

int proc_start_time(int pid, uint64_t *start)
{
    char buf[1024];
    const char *p;
    int rc = proc_stat_read(pid, buf, sizeof buf, &p);
    if (rc < 0)
        return rc;
    if (p[0] == 'Z' || p[0] == 'X')
        return -ESRCH;
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (!p)
            return -EPROTO;
        p++;
    }
    *start = strtoull(p, NULL, 10);
    return 0;
}

int store_launcher_gone(const store *s)
{
    int pid = s->hdr->launcher_pid;
    uint64_t start;
    if (pid <= 0)
        return 0;
    int rc = proc_start_time(pid, &start);
    if (rc == -ENOENT || rc == -ESRCH)
        return 1;
    return rc == 0 && start != s->hdr->launcher_start; /* unreadable /proc: assume alive */
}

void store_orphan_cleanup(const store *s, const char *run_dir, int proc)
{
    if (!store_orphaned())
        return;
    char hold[256];
    store_unlink(s->name);
    if (!store_holder_name(s->name, hold, sizeof hold))
        shm_unlink(hold);
    for (int p = 0; p <= N_PROC; p++) {
        if (p != proc && proc != PROC_ROUTER)
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.pid", run_dir, p < N_PROC ? proc_names[p] : "supervisor");
        FILE *f = fopen(path, "r");
        int pid = 0;
        if (!f)
            continue;
        if (fscanf(f, "%d", &pid) != 1)
            pid = 0;
        fclose(f);
        if (proc == PROC_ROUTER || pid == (int)getpid())
            unlink(path);
    }
    LOG_INFO("removed the shared memory %s%s", s->name, proc == PROC_ROUTER ? " and the pid files" : "");
}

int store_running(const store *s, int proc)
{
    pid_t pid = atomic_load(&s->hdr->pid[proc]);
    if (pid <= 0 || (kill(pid, 0) != 0 && errno != EPERM))
        return 0;
    char buf[256];
    const char *state; /* a zombie is dead */
    return proc_stat_read((int)pid, buf, sizeof buf, &state) < 0 || state[0] != 'Z';
}

static uint64_t beat_age_ms(const store *s, int proc)
{
    uint64_t t = atomic_load_explicit(&s->hdr->hb_ms[proc], memory_order_acquire);
    return t == 0 ? UINT64_MAX : now_ms() - t;
}

int store_alive(const store *s, int proc)
{
    return beat_age_ms(s, proc) <= STORE_SLOW_MS && store_running(s, proc);
}

int store_gone(const store *s, int proc)
{
    return beat_age_ms(s, proc) > STORE_HUNG_MS || !store_running(s, proc);
}

/* The heartbeat thread of this process, if any (one store per process). */
static pthread_t beat_thread;
static int beat_started;
static _Atomic int beat_stopping;

typedef struct {
    store *s;
    int proc;
} beat_arg;

static void *beat_main(void *p)
{
    beat_arg a = *(beat_arg *)p;
    free(p);
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    while (!atomic_load(&beat_stopping)) {
        store_heartbeat(a.s, a.proc);
        next.tv_nsec += STORE_BEAT_MS * 1000000L;
        if (next.tv_nsec >= 1000000000L) {
            next.tv_sec++;
            next.tv_nsec -= 1000000000L;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL); /* a timer, not a poll */
    }
    return NULL;
}

int store_heartbeat_thread(store *s, int proc)
{
    beat_arg *a = malloc(sizeof *a);
    if (!a)
        return -ENOMEM;
    *a = (beat_arg){s, proc};
    int rc = pthread_create(&beat_thread, NULL, beat_main, a);
    if (rc) {
        free(a);
        return -rc;
    }
    beat_started = 1;
    return 0;
}

void store_heartbeat_stop(void)
{
    if (!beat_started)
        return;
    atomic_store(&beat_stopping, 1);
    pthread_join(beat_thread, NULL);   /* within one beat period */
    beat_started = 0;
}
