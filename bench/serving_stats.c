/* serving_stats.c - bench-serving's figures from the per-request outcomes, defined as vLLM's
 * benchmark_serving defines them (see sv_summarize in serving.h), percentiles interpolated
 * as numpy's default and standard deviations over the population, as np.std.
 */
#include "serving.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double sv_percentile(const double *sorted, int n, double p)
{
    if (n <= 0)
        return 0;
    double pos = p / 100.0 * (n - 1);
    int lo = (int)floor(pos);
    if (lo >= n - 1)
        return sorted[n - 1];
    return sorted[lo] + (sorted[lo + 1] - sorted[lo]) * (pos - lo);
}

void sv_dist_of(double *v, int n, sv_dist *d)
{
    memset(d, 0, sizeof *d);
    if (n <= 0)
        return;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    double sum = 0, sq = 0;
    for (int i = 0; i < n; i++)
        sum += v[i];
    d->mean = sum / n;
    for (int i = 0; i < n; i++)
        sq += (v[i] - d->mean) * (v[i] - d->mean);
    d->std = sqrt(sq / n);
    d->median = sv_percentile(v, n, 50);
    d->p90 = sv_percentile(v, n, 90);
    d->p99 = sv_percentile(v, n, 99);
}

typedef struct {
    double t;
    int delta; /* +1 sent, -1 answered */
} edge;

static int cmp_edge(const void *a, const void *b)
{
    const edge *x = a, *y = b;
    if (x->t != y->t)
        return (x->t > y->t) - (x->t < y->t);
    return x->delta - y->delta; /* an end before a start at the same instant */
}

/* Most requests in flight at once, from when each was sent and answered. */
static int max_overlap(const sv_outcome *o, int n)
{
    edge *e = malloc((size_t)(2 * n) * sizeof *e);
    int best = 0, cur = 0;
    if (!e)
        return -1;
    for (int i = 0; i < n; i++) {
        e[2 * i] = (edge){o[i].start_ms, +1};
        e[2 * i + 1] = (edge){o[i].start_ms + o[i].e2e_ms, -1};
    }
    qsort(e, (size_t)(2 * n), sizeof *e, cmp_edge);
    for (int i = 0; i < 2 * n; i++) {
        cur += e[i].delta;
        if (cur > best)
            best = cur;
    }
    free(e);
    return best;
}

/* D's percentiles at CFG's, over the N sorted values V */
static void pcts_of(const double *v, int n, const sv_stats_cfg *cfg, sv_dist *d)
{
    for (int i = 0; cfg && i < cfg->n_pct && i < SV_MAX_PCT; i++)
        d->pct[i] = sv_percentile(v, n, cfg->pcts[i]);
}

/* The request meets every SLO of CFG */
static int good(const sv_outcome *o, const sv_stats_cfg *cfg)
{
    double tpot = o->n_out > 1 ? (o->e2e_ms - o->ttft_ms) / (o->n_out - 1) : 0;
    return (cfg->slo_ttft_ms <= 0 || o->ttft_ms <= cfg->slo_ttft_ms) &&
           (cfg->slo_tpot_ms <= 0 || tpot <= cfg->slo_tpot_ms) &&
           (cfg->slo_e2el_ms <= 0 || o->e2e_ms <= cfg->slo_e2el_ms);
}

void sv_summarize(const sv_dataset *d, const sv_outcome *o, double duration_s, const sv_stats_cfg *cfg,
                  sv_summary *s)
{
    int n = d->n;
    size_t n_itl = 0;
    memset(s, 0, sizeof *s);
    for (int i = 0; i < n; i++)
        if (o[i].ok && o[i].n_events > 1)
            n_itl += (size_t)o[i].n_events - 1;
    double *ttft = malloc((size_t)n * sizeof *ttft + 1), *tpot = malloc((size_t)n * sizeof *tpot + 1);
    double *e2el = malloc((size_t)n * sizeof *e2el + 1), *itl = malloc(n_itl * sizeof *itl + 1);
    int n_ok = 0, n_tpot = 0;
    size_t k = 0;
    if (!ttft || !tpot || !e2el || !itl)
        goto out;
    int slo = cfg && (cfg->slo_ttft_ms > 0 || cfg->slo_tpot_ms > 0 || cfg->slo_e2el_ms > 0);
    s->request_goodput = -1;
    for (int i = 0; i < n; i++) {
        if (!o[i].ok)
            continue;
        s->good_completed += slo && good(&o[i], cfg);
        s->total_input += d->v[i].prompt_len;
        s->total_output += o[i].n_out;
        ttft[n_ok] = o[i].ttft_ms;
        e2el[n_ok++] = o[i].e2e_ms;
        if (o[i].n_out > 1)
            tpot[n_tpot++] = (o[i].e2e_ms - o[i].ttft_ms) / (o[i].n_out - 1);
        for (int j = 0; j + 1 < o[i].n_events; j++)
            itl[k++] = o[i].itl_ms[j];
    }
    s->n_requests = n;
    s->completed = n_ok;
    s->failed = n - n_ok;
    s->duration_s = duration_s;
    if (slo)
        s->request_goodput = duration_s > 0 ? s->good_completed / duration_s : 0;
    if (duration_s > 0) {
        s->request_tput = n_ok / duration_s;
        s->output_tput = (double)s->total_output / duration_s;
        s->total_tput = (double)(s->total_input + s->total_output) / duration_s;
    }
    s->max_concurrent = max_overlap(o, n);
    sv_dist_of(ttft, n_ok, &s->ttft); /* sorted now */
    sv_dist_of(tpot, n_tpot, &s->tpot);
    sv_dist_of(e2el, n_ok, &s->e2el);
    sv_dist_of(itl, (int)k, &s->itl);
    pcts_of(ttft, n_ok, cfg, &s->ttft);
    pcts_of(tpot, n_tpot, cfg, &s->tpot);
    pcts_of(e2el, n_ok, cfg, &s->e2el);
    pcts_of(itl, (int)k, cfg, &s->itl);
out:
    free(ttft);
    free(tpot);
    free(e2el);
    free(itl);
}
