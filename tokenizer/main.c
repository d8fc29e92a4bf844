/* main.c - the tokenizer process: HTTP API, prompt encoding, slot ownership.
 *
 *   tokenizer --run-dir DIR --shm NAME --model-dir DIR [--host H] [--port N] [--http-threads N]
 *             (--host: the address to listen on, default 127.0.0.1; 0.0.0.0 for every interface:
 *             there is no authentication)
 *             [--http-queue N] [--max-queue N]
 *             (--http-threads: handler threads for generation and tokenize requests, 256 by
 *             default, at most the store's slots (more are cut to that: each running
 *             generation request holds a slot, so one that waited for a thread finds a free
 *             slot when it gets one); requests past them wait in a FIFO queue of at most
 *             --http-queue (4096 by default; 0: none wait) and get 503 with Retry-After past
 *             it; /health, /metrics and errors are answered on the event loop and never wait
 *             for them, see http.c)
 *             (--max-queue N: requests waiting beyond N, for a handler thread and in the
 *             router's queue together, get 503 with Retry-After; 0, the default: no limit)
 *             [--served-model-name NAME]   (OpenAI's "model"; default: the directory's name)
 *             [--chat-template FILE]   (the Jinja chat template instead of the model's; chat.h)
 *             [--api-key KEY]   (every route but /health, /ping, /version and /metrics then needs
 *             "Authorization: Bearer KEY"; default: the environment's CINDER_API_KEY, else
 *             VLLM_API_KEY; the environment keeps it out of `ps`)
 *             [--launch-id ID]   (/health answers carry X-Cinder-Launch: ID, so launch.sh knows
 *             it reached its own server and not another one on the port)
 *             [--allowed-origins LIST]   (CORS: vLLM's JSON list '["https://a.example"]' or
 *             a comma-separated list; default "*", any origin)
 *
 * See tokenizer.h for how requests flow through it and http.c for the API.
 */
#include "../common/log.h"
#include "http.h"
#include "metrics.h"
#include "tokenizer.h"

#include <cjson/cJSON.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_ORIGINS 64

/* --allowed-origins: a JSON list of strings (vLLM's form) or comma-separated; the count, or
 * -1 when it is neither */
static int parse_origins(const char *arg, char **out)
{
    int n = 0;
    cJSON *j = arg[0] == '[' ? cJSON_Parse(arg) : NULL, *e;
    if (arg[0] == '[') {
        if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) > MAX_ORIGINS)
            n = -1;
        cJSON_ArrayForEach(e, j) {
            if (n < 0 || !cJSON_IsString(e)) {
                n = -1;
                break;
            }
            out[n++] = strdup(e->valuestring);
        }
        cJSON_Delete(j);
        return n;
    }
    char *copy = strdup(arg), *save = NULL;
    for (char *t = strtok_r(copy, ", ", &save); t && n < MAX_ORIGINS; t = strtok_r(NULL, ", ", &save))
        out[n++] = strdup(t);
    free(copy);
    return n > 0 ? n : -1;
}

int main(int argc, char **argv)
{
    static proc p;
    proc_init(&p, PROC_TOKENIZER);
    const char *host = "127.0.0.1", *name = NULL, *chat_template = NULL, *api_key = getenv("CINDER_API_KEY"),
               *launch_id = NULL;
    static char *origins[MAX_ORIGINS];
    int port = 8000, n_threads = 256, http_queue = 4096, max_queue = 0, n_origins = 0;
    if (!api_key || !*api_key)
        api_key = getenv("VLLM_API_KEY");
    static const struct option opts[] = {
        PROC_OPTIONS, {"host", 1, 0, 'H'}, {"port", 1, 0, 'p'}, {"http-threads", 1, 0, 't'},
        {"http-queue", 1, 0, 'Q'}, {"max-queue", 1, 0, 'q'}, {"served-model-name", 1, 0, 'n'},
        {"chat-template", 1, 0, 'c'},
        {"api-key", 1, 0, 'k'}, {"allowed-origins", 1, 0, 'o'}, {"launch-id", 1, 0, 'l'}, {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'H': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 't': n_threads = atoi(optarg); break;
        case 'q': max_queue = atoi(optarg); break;
        case 'Q': http_queue = atoi(optarg); break;
        case 'n': name = optarg; break;
        case 'c': chat_template = optarg; break;
        case 'k': api_key = optarg; break;
        case 'l': launch_id = optarg; break;
        case 'o':
            if ((n_origins = parse_origins(optarg, origins)) < 0) {
                fprintf(stderr, "tokenizer: --allowed-origins takes a JSON list of strings or a comma-separated "
                                "list, not %s\n", optarg);
                return 2;
            }
            break;
        default:
            if (!proc_option(&p, c, optarg))
                goto usage;
        }
    }
    if (port <= 0 || n_threads < 1 || http_queue < 0 || proc_open(&p) < 0)
        goto usage;
    const char *model_dir = p.model_dir;
    proc_register(&p, PROC_STOP_WAIT);   /* before any thread: they inherit the mask */
    static tokenizer f;
    if (tokenizer_init(&f, &p))
        return 1;
    f.max_queue = max_queue;
    if (n_threads > (int)f.st.hdr->n_slots) { /* a handler beyond the slots could only refuse */
        LOG_WARN("--http-threads %d: cut to the %u request slots", n_threads, f.st.hdr->n_slots);
        n_threads = (int)f.st.hdr->n_slots;
    }
    if (!name) { /* the model directory's name */
        size_t n = strlen(model_dir);
        while (n > 1 && model_dir[n - 1] == '/')
            n--;
        const char *b = model_dir + n;
        while (b > model_dir && b[-1] != '/')
            b--;
        name = strndup(b, (size_t)(model_dir + n - b));
    }
    metrics_init(name, f.max_seq_len);
    http_opts ho = {host, port, n_threads, http_queue, model_dir, chat_template, name, api_key,
                    (const char *const *)origins, n_origins, launch_id};
    http_server *srv = http_start(&f, &ho);
    if (!srv)
        return 1;
    LOG_INFO("listening on %s:%d", host, port);
    proc_wait_stop();
    LOG_INFO("stopping");
    if (http_stop(srv)) { /* a handler still runs: it uses the tokenizer; the exit ends it */
        LOG_WARN("handlers still running at the stop");
        proc_free(&p);
        return 0;
    }
    tokenizer_free(&f);
    proc_free(&p);
    return 0;
usage:
    fprintf(stderr, "usage: tokenizer " PROC_USAGE " [--host H] [--port N] [--http-threads N]"
                    " [--http-queue N] [--max-queue N] [--served-model-name NAME] [--chat-template FILE]"
                    " [--api-key KEY] [--allowed-origins LIST] [--launch-id ID]\n");
    return 2;
}
