/* ceilings.h - the device's physical limits measured now, in the run that reports figures
 * against them: device-to-device copy bandwidth (1 GiB, bytes read + written) and the cuBLAS
 * bf16 GEMM rate at 8192^3 on random data (fp32 accumulate). One measurement for the kernel
 * benchmarks (bench/kernels/) and the forward benchmark (bench/cmd_forward.c).
 */
#ifndef CINDER_BENCH_CEILINGS_H
#define CINDER_BENCH_CEILINGS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    double copy_gbs;      /* GB/s, bytes read + written */
    double gemm_tflops;   /* bf16 in/out, fp32 accumulate, 8192^3 */
} bench_ceilings;

/* Measures both on the current device and prints the device and one CEILING line. */
bench_ceilings bench_measure_ceilings(void);
/* The cuBLASLt FP8 (E4M3) GEMM rate at 8192^3, TFLOP/s (ceilings_fp8.cu); prints a CEILING line. */
double bench_fp8_gemm_tflops(void);

#ifdef __cplusplus
}
#endif

#endif
