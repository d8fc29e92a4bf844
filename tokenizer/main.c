/* main.c - the tokenizer process (front end): HTTP API, prompt encoding, slot ownership.
 *
 *   tokenizer --run-dir DIR --shm NAME --model-dir DIR [--host H] [--port N] [--http-threads N]
 *             (--host: the address to listen on, default 127.0.0.1; 0.0.0.0 for every interface:
 *             there is no authentication)
 *             [--max-queue N]   (requests waiting beyond N get 503 with Retry-After)
 *             (--http-threads: generation requests may hold all but a reserve of n/8, 1 to 4
 *             threads, kept for /health and /metrics; past it they get 503, see http.c)
 *             [--served-model-name NAME]   (OpenAI's "model"; default: the directory's name)
 *
 * See front.h for how requests flow through it and http.c for the API.
 */
#include "../common/log.h"
#include "front.h"
#include "http.h"

#include <civetweb.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stopping;
static void on_signal(int sig) { stopping = sig; }

int main(int argc, char **argv)
{
    log_proc = "tokenizer";
    const char *run_dir = NULL, *shm = NULL, *model_dir = NULL, *host = "127.0.0.1", *name = NULL;
    int port = 8000, n_threads = 256, max_queue = 0;
    static const struct option opts[] = {
        {"run-dir", 1, 0, 'r'}, {"shm", 1, 0, 's'}, {"model-dir", 1, 0, 'm'},
        {"host", 1, 0, 'H'}, {"port", 1, 0, 'p'}, {"http-threads", 1, 0, 't'},
        {"max-queue", 1, 0, 'q'}, {"served-model-name", 1, 0, 'n'}, {"verbose", 0, 0, 'v'},
        {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'r': run_dir = optarg; break;
        case 's': shm = optarg; break;
        case 'm': model_dir = optarg; break;
        case 'H': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 't': n_threads = atoi(optarg); break;
        case 'q': max_queue = atoi(optarg); break;
        case 'n': name = optarg; break;
        case 'v': log_verbose = 1; break;
        default: goto usage;
        }
    }
    if (!run_dir || !shm || !model_dir || port <= 0 || n_threads < 1)
        goto usage;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    static front f;
    if (front_init(&f, run_dir, shm, model_dir))
        return 1;
    f.max_queue = max_queue;
    if (!name) { /* the model directory's name */
        size_t n = strlen(model_dir);
        while (n > 1 && model_dir[n - 1] == '/')
            n--;
        const char *b = model_dir + n;
        while (b > model_dir && b[-1] != '/')
            b--;
        name = strndup(b, (size_t)(model_dir + n - b));
    }
    http_opts ho = {host, port, n_threads, model_dir, name};
    struct mg_context *ctx = http_start(&f, &ho);
    if (!ctx)
        return 1;
    LOG_INFO("listening on %s:%d", host, port);
    while (!stopping)
        pause();
    LOG_INFO("stopping");
    mg_stop(ctx);
    store_orphan_cleanup(&f.st, run_dir, PROC_TOKENIZER);
    front_free(&f);
    return 0;
usage:
    fprintf(stderr, "usage: tokenizer --run-dir DIR --shm NAME --model-dir DIR [--host H] [--port N]"
                    " [--http-threads N] [--max-queue N] [--served-model-name NAME] [--verbose]\n");
    return 2;
}
