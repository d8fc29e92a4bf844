/* forward_compare.h - the forward benchmark's baselines (bench/forward/SHAPE/baseline.tsv):
 * the figures a run is compared against (`forward --compare`) and what `--save-baseline`
 * writes. Plain C, no CUDA, so tests/unit/test_forward_compare.c checks it on any machine.
 *
 * The file: '#' comments and blank lines, then one line per case, nine tab-separated fields:
 *   kind     decode | prefill
 *   batch    sequences in the forward (>= 1)
 *   len      decode: the context; prefill: the input length of each sequence (>= 1)
 *   dtype    the weights, bf16 | fp16 | fp8, then "+kv8" with an FP8 (E4M3) KV cache
 *   time_ms  the median wall time of one forward (> 0)
 *   floor_ms decode: the bandwidth floor; prefill: the matmul FLOPs at the GEMM ceiling of
 *            the same run; "-" where the source gives none
 *   run      the run id in bench/RESULTS.md (or --run-id), no blanks
 *   device   as the run names it (blanks allowed)
 *   date     YYYY-MM-DD
 * A case (kind, batch, len, dtype) appears at most once.
 */
#ifndef CINDER_BENCH_FORWARD_COMPARE_H
#define CINDER_BENCH_FORWARD_COMPARE_H

#include <stddef.h>
#include <stdio.h>

typedef enum { FCMP_DECODE, FCMP_PREFILL } fcmp_kind;

typedef struct {
    fcmp_kind kind;
    int batch, len;
    char dtype[16];
    double time_ms;     /* < 0: the forward failed (a run's case, never saved) */
    double floor_ms;    /* <= 0: not known */
    char run[32], device[64], date[16];
    int line;           /* the line it was read from; 0 for a run's own case */
} fcmp_case;

typedef struct {
    fcmp_case *v;
    int n, cap;
} fcmp_set;

/* One line (no newline needed) into C: 1 a case, 0 a comment or blank line, -1 malformed
 * with the reason in ERR. */
int fcmp_parse_line(const char *line, fcmp_case *c, char *err, size_t n_err);
/* Appends every case of F (named NAME in messages) to S: 0, or -1 with "NAME:LINE: reason"
 * in ERR (a malformed line, a case given twice, out of memory). */
int fcmp_read(FILE *f, const char *name, fcmp_set *s, char *err, size_t n_err);
/* fcmp_read of the file at PATH; -1 also when it cannot be opened. */
int fcmp_load(const char *path, fcmp_set *s, char *err, size_t n_err);
/* Writes the header comment and every case of S that has a time (failed ones are left out). */
int fcmp_write(FILE *f, const fcmp_set *s);
/* fcmp_write to PATH (replaced): 0, or -1 with the reason in ERR. */
int fcmp_save(const char *path, const fcmp_set *s, char *err, size_t n_err);

/* Appends a copy of C: 0, or -1 out of memory. */
int fcmp_add(fcmp_set *s, const fcmp_case *c);
/* The case of S with KEY's kind, batch, len and dtype, or NULL. */
const fcmp_case *fcmp_find(const fcmp_set *s, const fcmp_case *key);
void fcmp_free(fcmp_set *s);

/* "decode b=8 ctx=512 bf16" / "prefill 8x1024 fp8+kv8" into OUT. */
void fcmp_label(const fcmp_case *c, char *out, size_t n);
/* TIME over FLOOR (0 when either is unknown); the change from PREV to NOW in percent. */
double fcmp_x_floor(double time_ms, double floor_ms);
double fcmp_change_pct(double now_ms, double prev_ms);

/* The table, one row per case of RUN: case, floor ms, time ms, x floor, previous time ms
 * (run id), change %; "-" where BASE has no such case (or the figure is unknown). MD: as
 * markdown rows for bench/RESULTS.md. Ends with the count of BASE's cases this run left out. */
void fcmp_print(FILE *f, const fcmp_set *run, const fcmp_set *base, int md);

#endif
