/* prom.h - reads one sample out of a /metrics answer (Prometheus text) for the e2e tests. */
#ifndef CINDER_PROM_H
#define CINDER_PROM_H

/* The value of the sample of metric NAME whose labels include LABELS (e.g.
 * "outcome=\"length\""; NULL or "": any labels, such as model_name's alone), or -1. */
double prom_value(const char *text, const char *name, const char *labels);
/* The same from GET /metrics of the server on 127.0.0.1:PORT. */
double prom_scrape(int port, const char *name, const char *labels);

#endif
