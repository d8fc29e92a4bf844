/* cmd_shm_tool.c - shm-tool: creates, inspects and removes the shared-memory request store.
 *
 *   shm-tool create --name /cinder-X --model-dir DIR [--slots N] [--max-seq-len N] [--block-size N]
 *                   [--launcher-pid PID] [--holder]
 *   shm-tool stat   --name /cinder-X      (JSON: sizes, live processes, active slots)
 *   shm-tool remove --name /cinder-X
 *
 * launch.sh creates the store before any process starts, so every process reads the same
 * sizes from its header; max_seq_len defaults to the model's context length. --launcher-pid:
 * the foreground launch.sh; every process stops once it is gone (its start time is recorded
 * with it, so a later process with the same pid does not count). --holder: the launch runs a
 * holder process (the worker attaches to it). remove also removes the holder's region.
 */
#include "log.h"
#include "model_config.h"
#include "store.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void)
{
    fprintf(stderr, "usage: shm-tool create|stat|remove --name NAME [--model-dir DIR] [--slots N]"
                    " [--max-seq-len N] [--block-size N] [--launcher-pid PID] [--holder]\n");
    return 2;
}

static int cmd_create(const char *name, const char *model_dir, store_layout *l)
{
    model_config cfg;
    char err[256];
    if (!model_dir || model_config_load(&cfg, model_dir, err, sizeof err)) {
        fprintf(stderr, "shm-tool: %s\n", model_dir ? err : "--model-dir is required");
        return 1;
    }
    if (l->max_seq_len == 0 || (int)l->max_seq_len > cfg.max_seq_len)
        l->max_seq_len = (uint32_t)cfg.max_seq_len;
    l->vocab_size = (uint32_t)cfg.vocab_size;
    if (l->launcher_pid) {
        int rc = proc_start_time(l->launcher_pid, &l->launcher_start);
        if (rc) {
            fprintf(stderr, "shm-tool: launcher pid %d: %s\n", l->launcher_pid, strerror(-rc));
            return 1;
        }
    }
    store s;
    int rc = store_create(&s, name, l);
    if (rc) {
        fprintf(stderr, "shm-tool: create %s: %s\n", name, strerror(-rc));
        return 1;
    }
    printf("created %s: %u slots, max_seq_len %u, block_size %u, %.1f MiB\n", name, l->n_slots,
           l->max_seq_len, l->block_size, s.map_bytes / 1048576.0);
    store_close(&s);
    return 0;
}

static int cmd_stat(const char *name)
{
    store s;
    int rc = store_open(&s, name);
    if (rc) {
        fprintf(stderr, "shm-tool: open %s: %s\n", name, strerror(-rc));
        return 1;
    }
    const store_hdr *h = s.hdr;
    int n_active = 0;
    for (uint32_t i = 0; i < h->n_slots; i++)
        n_active += atomic_load(&store_slot(&s, (int)i)->state) != SLOT_FREE;
    uint64_t n_gaps = atomic_load(&h->n_step_gaps), n_steps = atomic_load(&h->n_worker_steps);
    printf("{\"n_slots\": %u, \"max_seq_len\": %u, \"block_size\": %u, \"n_kv_blocks\": %d, "
           "\"active_slots\": %d, \"n_waiting\": %d, \"n_running\": %d, \"n_free_blocks\": %d, "
           "\"kv_limit_blocks\": %d, \"n_preempted\": %llu, \"worker_steps\": %llu, "
           "\"mean_step_ms\": %.3f, \"mean_gap_us\": %.1f, \"step_busy_us\": %llu, \"step_gap_us\": %llu, "
           "\"n_step_gaps\": %llu, \"n_cached_blocks\": %d, \"prefix_queries\": %llu, "
           "\"prefix_hits\": %llu, \"worker_restarts\": %llu, \"resumed\": %llu, "
           "\"recomputed_tokens\": %llu, \"alive\": {",
           h->n_slots, h->max_seq_len, h->block_size, atomic_load(&h->n_kv_blocks), n_active,
           atomic_load(&h->n_waiting), atomic_load(&h->n_running), atomic_load(&h->n_free_blocks),
           atomic_load(&h->kv_limit_blocks), (unsigned long long)atomic_load(&h->n_preempted),
           (unsigned long long)n_steps, n_steps ? atomic_load(&h->step_busy_us) / 1000.0 / n_steps : 0.0,
           n_gaps ? (double)atomic_load(&h->step_gap_us) / n_gaps : 0.0,
           (unsigned long long)atomic_load(&h->step_busy_us), (unsigned long long)atomic_load(&h->step_gap_us),
           (unsigned long long)n_gaps, atomic_load(&h->n_cached_blocks),
           (unsigned long long)atomic_load(&h->prefix_queries),
           (unsigned long long)atomic_load(&h->prefix_hits),
           (unsigned long long)atomic_load(&h->n_worker_restarts),
           (unsigned long long)atomic_load(&h->n_resumed),
           (unsigned long long)atomic_load(&h->n_recomputed_tokens));
    for (int p = 0; p < N_PROC; p++)
        printf("%s\"%s\": %s", p ? ", " : "", proc_names[p], store_alive(&s, p) ? "true" : "false");
    printf("}}\n");
    store_close(&s);
    return 0;
}

int main(int argc, char **argv)
{
    log_proc = "shm-tool";
    if (argc < 2)
        return usage();
    const char *verb = argv[1], *name = NULL, *model_dir = NULL;
    store_layout l = {.n_slots = 256, .block_size = 16};
    static const struct option opts[] = {
        {"name", 1, 0, 'n'}, {"model-dir", 1, 0, 'm'}, {"slots", 1, 0, 's'},
        {"max-seq-len", 1, 0, 'l'}, {"block-size", 1, 0, 'b'}, {"launcher-pid", 1, 0, 'p'},
        {"holder", 0, 0, 'H'}, {0, 0, 0, 0},
    };
    int c;
    optind = 2;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'n': name = optarg; break;
        case 'm': model_dir = optarg; break;
        case 's': l.n_slots = (uint32_t)atoi(optarg); break;
        case 'l': l.max_seq_len = (uint32_t)atoi(optarg); break;
        case 'b': l.block_size = (uint32_t)atoi(optarg); break;
        case 'p': l.launcher_pid = atoi(optarg); break;
        case 'H': l.with_holder = 1; break;
        default: return usage();
        }
    }
    if (!name)
        return usage();
    if (!strcmp(verb, "create"))
        return cmd_create(name, model_dir, &l);
    if (!strcmp(verb, "stat"))
        return cmd_stat(name);
    if (!strcmp(verb, "remove")) {
        int rc = store_unlink(name);
        char hold[256];
        if (!store_holder_name(name, hold, sizeof hold))
            store_unlink(hold);   /* a holder that could not remove it (killed) */
        if (rc)
            fprintf(stderr, "shm-tool: remove %s: %s\n", name, strerror(-rc));
        return rc ? 1 : 0;
    }
    return usage();
}
