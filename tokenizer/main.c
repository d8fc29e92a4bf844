/* main.c - the tokenizer process: HTTP API, prompt encoding, slot ownership.
 *
 *   tokenizer --run-dir DIR --shm NAME --model-dir DIR [--host H] [--port N] [--http-threads N]
 *             (--host: the address to listen on, default 127.0.0.1; 0.0.0.0 for every interface:
 *             there is no authentication)
 *             [--max-queue N]   (requests waiting beyond N get 503 with Retry-After)
 *             (--http-threads: generation requests may hold all but a reserve of n/8, 1 to 4
 *             threads, kept for /health and /metrics; past it they get 503, see http.c)
 *             [--served-model-name NAME]   (OpenAI's "model"; default: the directory's name)
 *             [--chat-template FILE]   (the Jinja chat template instead of the model's; chat.h)
 *
 * See tokenizer.h for how requests flow through it and http.c for the API.
 */
#include "../common/log.h"
#include "tokenizer.h"
#include "http.h"

#include <civetweb.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


int main(int argc, char **argv)
{
    static proc p;
    proc_init(&p, PROC_TOKENIZER);
    const char *host = "127.0.0.1", *name = NULL, *chat_template = NULL;
    int port = 8000, n_threads = 256, max_queue = 0;
    static const struct option opts[] = {
        PROC_OPTIONS, {"host", 1, 0, 'H'}, {"port", 1, 0, 'p'}, {"http-threads", 1, 0, 't'},
        {"max-queue", 1, 0, 'q'}, {"served-model-name", 1, 0, 'n'}, {"chat-template", 1, 0, 'c'},
        {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'H': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 't': n_threads = atoi(optarg); break;
        case 'q': max_queue = atoi(optarg); break;
        case 'n': name = optarg; break;
        case 'c': chat_template = optarg; break;
        default:
            if (!proc_option(&p, c, optarg))
                goto usage;
        }
    }
    if (port <= 0 || n_threads < 1 || proc_open(&p) < 0)
        goto usage;
    const char *model_dir = p.model_dir;
    proc_register(&p, PROC_STOP_WAIT);   /* before any thread: they inherit the mask */
    static tokenizer f;
    if (tokenizer_init(&f, &p))
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
    http_opts ho = {host, port, n_threads, model_dir, chat_template, name};
    struct mg_context *ctx = http_start(&f, &ho);
    if (!ctx)
        return 1;
    LOG_INFO("listening on %s:%d", host, port);
    proc_wait_stop();
    LOG_INFO("stopping");
    mg_stop(ctx);
    tokenizer_free(&f);
    proc_free(&p);
    return 0;
usage:
    fprintf(stderr, "usage: tokenizer " PROC_USAGE " [--host H] [--port N] [--http-threads N]"
                    " [--max-queue N] [--served-model-name NAME] [--chat-template FILE]\n");
    return 2;
}
