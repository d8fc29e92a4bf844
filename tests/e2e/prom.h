/* prom.h - reads one sample out of a /metrics answer (Prometheus text) for the e2e tests
 * (cluster_metric scrapes a launch's). */
#ifndef CINDER_PROM_H
#define CINDER_PROM_H

/* The value of the sample of metric NAME whose labels include LABELS (e.g.
 * "outcome=\"length\""; NULL or "": any labels, such as model_name's alone), or -1. */
double prom_value(const char *text, const char *name, const char *labels);

#endif
