/* pdl.cuh - programmatic dependent launch (Hopper): a kernel launched with pdl_launch(..., 1)
 * may start while the kernel before it in the stream is still running, so its launch and
 * prologue (loads of weights, which no kernel writes) overlap that kernel's tail.
 *
 * Rules every kernel launched this way keeps: before pdl_wait() it reads only data that no
 * kernel of the same stream writes (weights, inputs uploaded before the launch) and writes
 * nothing; every block calls pdl_wait() before anything else, so when it completes, the kernel
 * before it has completed too (the ordering stays transitive along the stream).
 * pdl_trigger() lets the next kernel launch once every block of this one has called it.
 * Both are no-ops for a kernel launched without the attribute. Which launch sites launch
 * early is the caller's choice (the worker's --pdl mask); kernels never read the environment.
 */
#ifndef CINDER_PDL_CUH
#define CINDER_PDL_CUH

#include <cuda_runtime.h>

__device__ __forceinline__ void pdl_wait()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_trigger()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/* KERNEL<<<GRID, BLOCK, SMEM, STREAM>>>(ARGS...), as a programmatic dependent when PDL. */
template <typename... KArgs, typename... Args>
static cudaError_t pdl_launch(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem,
                              cudaStream_t stream, int pdl, Args... args)
{
    cudaLaunchConfig_t cfg = {};
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    cfg.attrs = attr;
    cfg.numAttrs = pdl ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, kernel, ((KArgs)args)...);
}

#endif
