/* pgd_ktrace.so: a kernel tracer for any CUDA program, loaded by the CUDA driver itself
 * (CUDA_INJECTION64_PATH), which records every kernel's start and end through CUPTI's
 * activity API and prints, when the program ends, where each CUDA graph's replays spend
 * their time kernel by kernel (ktrace_table.h: exclusive time, run time, idle time), then
 * the kernels launched outside graphs. What `pagoda bench latency --profile-ops` cannot
 * show: the steps as they run in production, replayed graphs with their kernels overlapping
 * under programmatic dependent launch.
 *
 *   CUDA_INJECTION64_PATH=$BUILD/tools/ktrace/.libs/pgd_ktrace.so \
 *     pagoda bench latency --random-weights CONFIG --batch 1 --steps 32
 *
 * PGD_KTRACE_OUT   the report's file (default: standard error)
 * PGD_KTRACE_MIN_REPLAYS  graphs replayed fewer times are left out (default 4: captures
 *                  and warm-up replays)
 * PGD_KTRACE_NODES=1  also every node of each graph, in the order of a replay
 * PGD_KTRACE_WIDTH the kernel names' column (default 64)
 *
 * CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL keeps kernels concurrent, but on Hopper CUPTI times
 * kernels by instrumenting them (hardware timestamps are Blackwell's), which adds a little
 * to each: compare a traced replay's span with the untraced step (docs/PERFORMANCE.md). */
#include "tools/ktrace/ktrace_table.h"
#include <cupti.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define KT_BUF_BYTES (8u << 20)
#define KT_NAME_SLOTS 4096           /* the pointer cache's slots (a power of two) */

/* The C++ runtime's demangler (extern "C" in libstdc++'s ABI). */
char *__cxa_demangle(const char *mangled, char *out, size_t *len, int *status);

static pthread_mutex_t kt_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pgd_ktrace kt;
static int kt_failed;                /* a record could not be kept: said once in the report */
static size_t kt_dropped;
static int kt_printed;
/* CUPTI hands one name pointer for all the records of a kernel: pointer -> name index. */
static const char *kt_ptr[KT_NAME_SLOTS];
static int kt_idx[KT_NAME_SLOTS];

/* "void sg_kernel<__nv_bfloat16, 1>(sg_args)" -> "sg_kernel<__nv_bfloat16, 1>": the return
 * type and the parameter list say nothing a table needs. */
static int kt_intern(const char *mangled)
{
    int status = -1;
    char *d = mangled ? __cxa_demangle(mangled, NULL, NULL, &status) : NULL;
    const char *s = status == 0 && d ? d : mangled ? mangled : "(unnamed)";
    char buf[512];
    snprintf(buf, sizeof buf, "%s", !strncmp(s, "void ", 5) ? s + 5 : s);
    int depth = 0;
    for (char *p = buf; *p; p++) {
        if (*p == '<')
            depth++;
        else if (*p == '>')
            depth--;
        else if (*p == '(' && depth == 0) {
            *p = 0;
            break;
        }
    }
    free(d);
    return pgd_ktrace_name(&kt, buf);
}

static int kt_name(const char *p)
{
    size_t h = ((uintptr_t)p >> 4) & (KT_NAME_SLOTS - 1);
    for (int probe = 0; probe < KT_NAME_SLOTS; probe++, h = (h + 1) & (KT_NAME_SLOTS - 1)) {
        if (kt_ptr[h] == p)
            return kt_idx[h];
        if (!kt_ptr[h]) {
            const int i = kt_intern(p);
            if (i >= 0) {
                kt_ptr[h] = p;
                kt_idx[h] = i;
            }
            return i;
        }
    }
    return kt_intern(p);             /* a full cache: correct, only slower */
}

static void CUPTIAPI kt_buffer_requested(uint8_t **buffer, size_t *size, size_t *max_records)
{
    *buffer = aligned_alloc(8, KT_BUF_BYTES);
    *size = *buffer ? KT_BUF_BYTES : 0;
    *max_records = 0;
}

static void CUPTIAPI kt_buffer_completed(CUcontext ctx, uint32_t stream, uint8_t *buffer,
                                         size_t size, size_t valid)
{
    (void)size;
    CUpti_Activity *a = NULL;
    pthread_mutex_lock(&kt_lock);
    while (cuptiActivityGetNextRecord(buffer, valid, &a) == CUPTI_SUCCESS) {
        if (a->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL)
            continue;
        const CUpti_ActivityKernel10 *k = (const CUpti_ActivityKernel10 *)a;
        struct pgd_ktrace_rec r = {
            .start = k->start, .end = k->end, .graph_id = k->graphId,
            .launch_id = k->correlationId, .node_id = k->graphNodeId, .name = kt_name(k->name),
        };
        if (r.name < 0 || r.end < r.start || pgd_ktrace_add(&kt, &r))
            kt_failed = 1;
    }
    size_t dropped = 0;
    if (cuptiActivityGetNumDroppedRecords(ctx, stream, &dropped) == CUPTI_SUCCESS)
        kt_dropped += dropped;
    pthread_mutex_unlock(&kt_lock);
    free(buffer);
}

static int kt_env_int(const char *name, int dflt)
{
    const char *v = getenv(name);
    return v && *v ? atoi(v) : dflt;
}

static void kt_report(void)
{
    cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
    pthread_mutex_lock(&kt_lock);
    if (!kt_printed) {
        kt_printed = 1;
        const char *path = getenv("PGD_KTRACE_OUT");
        FILE *f = path && *path ? fopen(path, "w") : stderr;
        if (!f) {
            fprintf(stderr, "ktrace: cannot write %s; the report goes to standard error\n", path);
            f = stderr;
        }
        fprintf(f, "ktrace: %zu kernel runs traced", kt.n);
        if (kt_dropped)
            fprintf(f, ", %zu records dropped by CUPTI", kt_dropped);
        if (kt_failed)
            fprintf(f, ", some records lost (out of memory or out of order)");
        fprintf(f, "\n");
        pgd_ktrace_print(f, &kt, kt_env_int("PGD_KTRACE_MIN_REPLAYS", 4),
                         kt_env_int("PGD_KTRACE_NODES", 0), kt_env_int("PGD_KTRACE_WIDTH", 64));
        if (f != stderr)
            fclose(f);
    }
    pthread_mutex_unlock(&kt_lock);
}

/* A context about to go: its records are flushed while they can still be read. */
static void CUPTIAPI kt_callback(void *user, CUpti_CallbackDomain domain, CUpti_CallbackId cbid,
                                 const void *data)
{
    (void)user;
    (void)data;
    if (domain == CUPTI_CB_DOMAIN_RESOURCE && cbid == CUPTI_CBID_RESOURCE_CONTEXT_DESTROY_STARTING)
        cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
}

static void kt_complain(const char *what, CUptiResult r)
{
    const char *msg = NULL;
    cuptiGetResultString(r, &msg);
    fprintf(stderr, "ktrace: %s failed: %s; no kernels are traced\n", what, msg ? msg : "?");
}

/* Called by the CUDA driver when it initializes (CUDA_INJECTION64_PATH). */
int InitializeInjection(void);
int InitializeInjection(void)
{
    CUpti_SubscriberHandle sub;
    CUptiResult r = cuptiActivityRegisterCallbacks(kt_buffer_requested, kt_buffer_completed);
    if (r != CUPTI_SUCCESS) {
        kt_complain("cuptiActivityRegisterCallbacks", r);
        return 0;
    }
    r = cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
    if (r != CUPTI_SUCCESS) {
        kt_complain("cuptiActivityEnable(CONCURRENT_KERNEL)", r);
        return 0;
    }
    if (cuptiSubscribe(&sub, kt_callback, NULL) == CUPTI_SUCCESS)
        cuptiEnableCallback(1, sub, CUPTI_CB_DOMAIN_RESOURCE,
                            CUPTI_CBID_RESOURCE_CONTEXT_DESTROY_STARTING);
    atexit(kt_report);
    return 1;
}
