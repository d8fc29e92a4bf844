/* main.c - the holder process: owns the memory of the weights and the KV cache so that they
 * outlive the worker (README "Restarts"; the memory itself: worker/hold.h).
 *
 * At start it allocates the weights and the KV cache (CPU backend: one POSIX shared-memory
 * region of this user's, named after the store; CUDA: device memory exported with CUDA IPC
 * handles), loads the weights once and keeps their digest (kernels/digest.h). Then it
 * answers the worker's HOLDER_ATTACH requests on RUN_DIR/holder.ipc (ZeroMQ REP), one per
 * worker start, with where everything is and the KV generation:
 *   - the first worker of this holder gets the weights as loaded;
 *   - a later one (its predecessor stopped or died, perhaps from a GPU fault that wrote
 *     anywhere it could reach) only after the weights' digest was computed again and
 *     compared (the time is in the reply and the log): on a mismatch the weights are loaded
 *     again from disk, and so they are when the worker asks (restart.sh --reload-weights);
 *   - the KV generation is this holder's epoch << 32 | the number of loads after the first:
 *     the router resumes running requests from their KV only when a new worker reports the
 *     generation the lost one had, so a reload (or a new holder) means recompute.
 * The holder does no compute. Restarting it loses the weights and the KV: a full restart of
 * the worker follows (the worker stops when its holder is gone; restart.sh restarts both).
 * Its own directory because DIR/main.c is a process in the Makefile's conventions; the
 * memory code it shares with the worker (worker/hold*.c, hold_cuda.cu) is in worker/.
 *
 *   holder --run-dir DIR --shm NAME --model-dir DIR [the worker's backend flags]
 */
#include "../common/ipc.h"
#include "../common/log.h"
#include "../common/proc.h"
#include "../worker/hold.h"

#include <errno.h>
#include <getopt.h>
#include <string.h>
#include <zmq.h>

static int usage(void)
{
    fprintf(stderr, "usage: holder " PROC_USAGE " %s\n", backend_opts_usage);
    return 2;
}

/* The holder of BO's backend (auto: CUDA when the build and the machine have it), its
 * weights loaded. */
static hold *hold_open(const backend_opts *bo, const char *region)
{
    char err[512] = "";
    hold *h = NULL;
#ifdef CINDER_CUDA_BACKEND
    if (strcmp(bo->backend, "cpu")) {
        h = hold_cuda_init(bo, err, sizeof err);
        if (!h && !strcmp(bo->backend, "cuda")) {
            LOG_ERR("cuda holder: %s", err);
            return NULL;
        }
        if (!h)
            LOG_INFO("no CUDA holder (%s): holding CPU memory", err);
    }
#else
    if (!strcmp(bo->backend, "cuda")) {
        LOG_ERR("this build has no CUDA backend");
        return NULL;
    }
#endif
    if (!h && !(h = hold_cpu_init(bo, region, err, sizeof err)))
        LOG_ERR("cpu holder: %s", err);
    if (h && hold_load(h, err, sizeof err) < 0) {
        LOG_ERR("%s holder: %s", h->name, err);
        h->free(h);
        return NULL;
    }
    return h;
}

/* The answer to one attach request A: the weights checked (not for the first worker) or
 * loaded again, and the KV generation. */
static void attach(hold *h, const msg_holder_attach *a, int *n_attached, uint32_t *n_loads,
                   uint32_t epoch, msg_holder_attached *out)
{
    *out = h->info;
    out->status = 0;
    out->verify_ms = -1;
    out->reloaded = 0;
    int reload = a->reload;
    const char *why = "asked for (--reload-weights)";
    if (*n_attached > 0 && !reload) {
        double ms;
        uint64_t d = hold_digest(h, &ms);
        out->verify_ms = (float)ms;
        LOG_INFO("worker epoch %u: weights digest checked in %.2f ms: %s", a->worker_epoch, ms,
                 d == h->digest ? "intact" : "MISMATCH");
        if (d != h->digest) {
            reload = 1;
            why = "their digest did not match";
        }
    }
    if (reload) {
        char err[512];
        LOG_WARN("loading the weights again: %s; the KV cache is recomputed", why);
        if (hold_load(h, err, sizeof err) < 0) {
            LOG_ERR("reload: %s", err);
            out->status = -EIO;
            return;
        }
        ++*n_loads;
        out->reloaded = 1;
    }
    out->kv_gen = (uint64_t)epoch << 32 | *n_loads;
    ++*n_attached;
}

int main(int argc, char **argv)
{
    static proc p;
    proc_init(&p, PROC_HOLDER);
    backend_opts bo;
    backend_opts_init(&bo);
    static const struct option opts[] = {PROC_OPTIONS, BACKEND_OPTIONS, {0, 0, 0, 0}};
    int c, idx;
    while ((c = getopt_long(argc, argv, "", opts, &idx)) != -1) {
        if (c == 'X') {
            if (backend_opts_parse(&bo, opts[idx].name, optarg) != 1)
                return usage();
        } else if (!proc_option(&p, c, optarg)) {
            return usage();
        }
    }
    if (bo.quant_fp8 || bo.kv_fp8) {   /* it keeps 16-bit (CPU: fp32) weights and KV */
        fprintf(stderr, "holder: --quantization fp8 and --kv-cache-dtype fp8 are not supported "
                "with the holder (launch.sh --no-holder)\n");
        return 2;
    }
    if (proc_open(&p) < 0)
        return usage();
    store_hdr *sh = p.st.hdr;
    char region[256];
    if (!sh->with_holder || store_holder_name(p.shm, region, sizeof region)) {
        LOG_ERR("the store %s was not created for a holder (shm-tool create --holder)", p.shm);
        return 2;
    }
    bo.model_dir = p.model_dir;
    backend_opts_layout(&bo, (int)sh->block_size, (int)sh->max_seq_len, (int)sh->n_slots);
    proc_register(&p, PROC_STOP_DEFAULT);   /* a stop while loading ends it at once */
    if (store_heartbeat_thread(&p.st, PROC_HOLDER))
        DIE("cannot start the heartbeat thread");
    uint32_t epoch = atomic_load(&sh->epoch[PROC_HOLDER]);
    hold *h = hold_open(&bo, region);
    if (!h)
        return 1;
    proc_catch_stop();
    void *zctx = zmq_ctx_new();
    void *rep = ipc_open(zctx, ZMQ_REP, p.run_dir, IPC_HOLDER, 1);
    if (!rep)
        return 1;
    LOG_INFO("ready: %s memory, weights %llu MB, KV %d blocks (%llu MB), epoch %u", h->name,
             (unsigned long long)(h->info.weights_bytes >> 20), h->info.n_kv_blocks,
             (unsigned long long)(h->info.kv_bytes >> 20), epoch);
    static msg_any in;
    int n_attached = 0;
    uint32_t n_loads = 0;
    while (!proc_stopping()) {
        if (ipc_wait(rep, PROC_BEAT_MS) <= 0)
            continue;
        int rc = ipc_recv(rep, &in);
        if (rc == 0)
            continue;
        msg_holder_attached out = h->info;
        if (rc < 0 || in.type != MSG_HOLDER_ATTACH)
            out.status = -EPROTO;   /* REP answers every request, even a bad one */
        else
            attach(h, &in.u.holder_attach, &n_attached, &n_loads, epoch, &out);
        ipc_send(rep, MSG_HOLDER_ATTACHED, &out);
    }
    LOG_INFO("stopping: the weights and the KV cache go with this process");
    ipc_close(rep);
    zmq_ctx_term(zctx);
    h->free(h);
    proc_free(&p);
    return 0;
}
