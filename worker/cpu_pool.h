/* cpu_pool.h - a fixed pool of pthreads running parallel-for loops for the CPU backend.
 *
 * cpu_pool_run(p, fn, arg, n) calls fn(arg, task, thread) once for each task in [0, n),
 * spread over the pool's threads (the caller's thread is thread 0), and returns when all
 * are done. Which thread runs a task varies; tasks must write disjoint outputs, so results do
 * not depend on the number of threads.
 */
#ifndef CINDER_CPU_POOL_H
#define CINDER_CPU_POOL_H

typedef void (*cpu_pool_fn)(void *arg, int task, int thread);
typedef struct cpu_pool cpu_pool;

/* N_THREADS total threads including the caller; 0 = one per available core. NULL on failure. */
cpu_pool *cpu_pool_init(int n_threads);
int cpu_pool_threads(const cpu_pool *p);
void cpu_pool_run(cpu_pool *p, cpu_pool_fn fn, void *arg, int n_tasks);
void cpu_pool_free(cpu_pool *p);

#endif
