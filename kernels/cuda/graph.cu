/* CUDA graphs: capture of the work a context's stream is given, and its replay. The
 * runner captures decode steps with these (see runtime/runner/runner_graph.c). */
#include "kernels/cuda/common.cuh"
#include <stdlib.h>

struct pgd_cuda_graph {
    cudaGraphExec_t exec;
    size_t nodes;
};

extern "C" int pgd_cuda_capture_begin(struct pgd_cuda_ctx *c, char *err, size_t errlen)
{
    /* Thread-local: other threads' CUDA calls neither break nor join this capture. */
    PGD_CUDA_CHECK(err, errlen, cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal),
                   "graph capture");
    c->captured = 1;          /* the quantized linears' scratch stays where it is from now */
    return 0;
}

extern "C" int pgd_cuda_capture_end(struct pgd_cuda_ctx *c, struct pgd_cuda_graph **out,
                                    char *err, size_t errlen)
{
    *out = NULL;
    cudaGraph_t g = NULL;
    cudaError_t e = cudaStreamEndCapture(c->stream, &g);
    if (e != cudaSuccess || !g) {
        cudaGetLastError();   /* an invalidated capture leaves a sticky launch error */
        if (g)
            cudaGraphDestroy(g);
        return pgd_cuda_failf(err, errlen, "graph capture: cudaStreamEndCapture: %s",
                              cudaGetErrorString(e));
    }
    struct pgd_cuda_graph *cg = (struct pgd_cuda_graph *)calloc(1, sizeof *cg);
    if (!cg) {
        cudaGraphDestroy(g);
        return pgd_cuda_failf(err, errlen, "graph capture: out of host memory");
    }
    cudaGraphGetNodes(g, NULL, &cg->nodes);
    e = cudaGraphInstantiate(&cg->exec, g, 0);
    cudaGraphDestroy(g);
    if (e != cudaSuccess) {
        cudaGetLastError();
        free(cg);
        return pgd_cuda_failf(err, errlen, "graph capture: cudaGraphInstantiate: %s",
                              cudaGetErrorString(e));
    }
    *out = cg;
    return 0;
}

/* Ends a capture that failed part way (an op reported an error): the partial graph is
 * dropped and the stream is usable again. */
extern "C" void pgd_cuda_capture_abort(struct pgd_cuda_ctx *c)
{
    cudaStreamCaptureStatus s = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(c->stream, &s) == cudaSuccess && s != cudaStreamCaptureStatusNone) {
        cudaGraph_t g = NULL;
        cudaStreamEndCapture(c->stream, &g);
        if (g)
            cudaGraphDestroy(g);
    }
    cudaGetLastError();
}

extern "C" int pgd_cuda_graph_launch(struct pgd_cuda_ctx *c, struct pgd_cuda_graph *g, char *err,
                                     size_t errlen)
{
    PGD_CUDA_CHECK(err, errlen, cudaGraphLaunch(g->exec, c->stream), "graph launch (%zu nodes)",
                   g->nodes);
    return 0;
}

extern "C" size_t pgd_cuda_graph_nodes(const struct pgd_cuda_graph *g) { return g ? g->nodes : 0; }

extern "C" void pgd_cuda_graph_destroy(struct pgd_cuda_graph *g)
{
    if (!g)
        return;
    cudaGraphExecDestroy(g->exec);
    free(g);
}
