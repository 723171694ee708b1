/* The activation arena (see arena.h): chunks of device memory handed out by bumping an
 * offset, rewound every step, and the fingerprint of the addresses handed out. */
#include "runtime/runner/arena.h"
#include "runtime/base/device.h"
#include <stdlib.h>

struct pgd__arena_chunk {
    struct pgd__arena_chunk *next;
    char *base;                        /* on the arena's device */
    size_t cap, used;
    size_t top;                        /* bytes handed out from the end (alloc_top) */
};

/* Every allocation starts on a 256-byte boundary: what cuBLAS and vectorised kernels want,
 * and a multiple of every element size. */
#define ARENA_ALIGN 256

static size_t align_up(size_t n)
{
    return (n + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
}

/* An allocation's bytes: aligned, and at least one unit (every pointer its own). */
static size_t alloc_bytes(size_t n)
{
    return n ? align_up(n) : ARENA_ALIGN;
}

void pgd__arena_init(struct pgd__arena *a, enum pgd_device device)
{
    a->device = device;
    a->chunks = a->cur = NULL;
    a->in_use = a->high_water = 0;
    a->fingerprint = 0xcbf29ce484222325ull;   /* FNV-1a's offset basis */
}

/* A chunk of cap bytes on device (owned by the caller), or NULL when out of memory. */
static struct pgd__arena_chunk *chunk_new(enum pgd_device device, size_t cap)
{
    struct pgd__arena_chunk *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->base = pgd__device_alloc(device, cap);
    if (!c->base) {
        free(c);
        return NULL;
    }
    c->cap = cap;
    return c;
}

int pgd__arena_reserve(struct pgd__arena *a, size_t bytes)
{
    size_t total = 0;
    for (struct pgd__arena_chunk *c = a->chunks; c; c = c->next)
        total += c->cap;
    if (total >= bytes)
        return 0;
    /* Replace every chunk by one big enough (only between steps). */
    struct pgd__arena_chunk *c = chunk_new(a->device, bytes);
    if (!c)
        return -1;
    pgd__arena_fini(a);
    a->chunks = a->cur = c;
    return 0;
}

void *pgd__arena_alloc(struct pgd__arena *a, size_t bytes)
{
    bytes = alloc_bytes(bytes);
    while (a->cur && a->cur->used + bytes + a->cur->top > a->cur->cap)
        a->cur = a->cur->next;
    if (!a->cur) {
        size_t cap = bytes > ((size_t)1 << 20) ? bytes : ((size_t)1 << 20);
        struct pgd__arena_chunk *c = chunk_new(a->device, cap);
        if (!c)
            return NULL;
        /* Append so that earlier chunks are tried first after a reset. */
        struct pgd__arena_chunk **tail = &a->chunks;
        while (*tail)
            tail = &(*tail)->next;
        *tail = c;
        a->cur = c;
    }
    /* Memory valid until the next reset; owned by the arena. */
    void *p = a->cur->base + a->cur->used;
    a->cur->used += bytes;
    a->in_use += bytes;
    /* An FNV-1a style fold of (address, size): equal for two steps that got the same
     * addresses for the same sizes in the same order (what a CUDA graph replay needs). */
    a->fingerprint = (a->fingerprint ^ (uint64_t)(uintptr_t)p) * 0x100000001b3ull + bytes;
    if (a->in_use > a->high_water)
        a->high_water = a->in_use;
    return p;
}

/* The top is the first chunk's: the one a reset's first allocations land in (the runner's
 * reserved one), whatever chunks later steps appended. */
void *pgd__arena_alloc_top(struct pgd__arena *a, size_t bytes)
{
    bytes = alloc_bytes(bytes);
    struct pgd__arena_chunk *c = a->chunks;
    if (!c || c->used + c->top + bytes > c->cap)
        return NULL;
    c->top += bytes;
    return c->base + c->cap - c->top;
}

size_t pgd__arena_top_room(const struct pgd__arena *a, size_t bottom)
{
    const struct pgd__arena_chunk *c = a->chunks;
    bottom = align_up(bottom);
    if (!c || bottom >= c->cap)
        return 0;
    return c->cap - bottom;
}

void pgd__arena_reset(struct pgd__arena *a)
{
    for (struct pgd__arena_chunk *c = a->chunks; c; c = c->next)
        c->used = c->top = 0;
    a->cur = a->chunks;
    a->in_use = 0;
    a->fingerprint = 0xcbf29ce484222325ull;
}

void pgd__arena_fini(struct pgd__arena *a)
{
    struct pgd__arena_chunk *c = a->chunks;
    while (c) {
        struct pgd__arena_chunk *next = c->next;
        pgd__device_free(a->device, c->base);
        free(c);
        c = next;
    }
    a->chunks = a->cur = NULL;
}
