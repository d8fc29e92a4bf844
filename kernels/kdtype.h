/* kdtype.h - element type tag passed to the kernel launchers (plain C, so C callers can use it).
 *
 * Activations, weights and the KV cache are 16-bit floats on the GPU; every kernel does its
 * arithmetic in fp32. Launchers take untyped device pointers plus one of these tags.
 */
#ifndef CINDER_KDTYPE_H
#define CINDER_KDTYPE_H

typedef enum {
    KDT_BF16 = 0,   /* __nv_bfloat16 */
    KDT_F16 = 1,    /* __half */
} kdtype;

#endif
