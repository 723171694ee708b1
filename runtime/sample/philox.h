/* Philox4x32-10 and the sampler's uniform draw, for the CPU sampler (runtime/sample/sampler.c) and
 * its GPU twin (kernels/cuda/sample.cu) alike: one definition, compiled as C and, under
 * nvcc, for host and device, so the two draw the same numbers by construction. */
#ifndef PGD_RUNTIME_PHILOX_H
#define PGD_RUNTIME_PHILOX_H

#include <stdint.h>

#ifdef __CUDACC__
#define PGD_HOST_DEVICE __host__ __device__
#else
#define PGD_HOST_DEVICE
#endif

/* Philox4x32-10 of the 128-bit counter (c0, c1) under a 64-bit key. */
static inline PGD_HOST_DEVICE void pgd__philox4x32(uint64_t key, uint64_t c0, uint64_t c1,
                                                    uint32_t out[4])
{
    uint32_t c[4] = { (uint32_t)c0, (uint32_t)(c0 >> 32), (uint32_t)c1, (uint32_t)(c1 >> 32) };
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c[0];
        uint64_t p1 = (uint64_t)0xCD9E8D57u * c[2];
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c[1] ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c[3] ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c[0] = n0; c[1] = n1; c[2] = n2; c[3] = n3;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    for (int i = 0; i < 4; i++)
        out[i] = c[i];
}

/* A uniform double in [0, 1) for draw number `draw` of sample `child` of `seed`: 53 bits of
 * Philox(seed; draw, child). */
static inline PGD_HOST_DEVICE double pgd__sample_uniform(uint64_t seed, uint32_t child,
                                                         uint64_t draw)
{
    uint32_t r[4];
    pgd__philox4x32(seed, draw, (uint64_t)child, r);
    uint64_t bits = ((uint64_t)(r[0] >> 5) << 26) | (r[1] >> 6);   /* 53 bits */
    return (double)bits * (1.0 / 9007199254740992.0);
}

#endif
