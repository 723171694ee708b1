/* The engine under many submitting threads, as a plain program (no Criterion: it cannot run
 * under ThreadSanitizer, Snaipe/Criterion#274). It runs in every `make check`; a build
 * configured with --enable-tsan runs only this test. Exit status 0 = pass. */
#include "tests/lib/engine_fixture.h"

enum { THREADS = 8, REQUESTS = 25 };

static void tweak_fcfs(struct pgd_engine_params *p)
{
    fixture_tweak_stress(p);
    p->policy = PGD_SCHED_FCFS;
}

/* The same with async scheduling: each step planned and submitted while the stand-in model's
 * worker thread runs the one before, with aborts and stop strings landing on samples whose
 * next step flies. */
static void tweak_async(struct pgd_engine_params *p)
{
    fixture_tweak_stress(p);
    p->async_scheduling = true;
}

/* text: with the fixture's text path, so the workers' threads make their requests' text
 * (engine_reader_text.c) while the engine runs, find stop strings and tell the engine to
 * end those samples, and the streams left at the end make theirs after the engine is
 * gone. */
static int run(void (*tweak)(struct pgd_engine_params *), bool text, const char *name)
{
    char err[256];
    /* Async runs get the backend's async pair: a worker thread runs each step. */
    struct pgd_engine *e = fixture_engine(
        &(struct fixture_engine_opts){ .num_blocks = 20, .block_size = 4, .text = text,
                                       .tweak = tweak, .async_pair = strstr(name, "async") != NULL },
        err, sizeof err);
    if (!e) {
        fprintf(stderr, "%s: %s\n", name, err);
        return 1;
    }
    struct worker w[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){ .e = e, .id = i, .n_requests = REQUESTS, .stop_strings = text };
        pthread_create(&th[i], NULL, worker_main, &w[i]);
    }
    /* Meanwhile, another thread reads the metrics. */
    for (int k = 0; k < 20; k++) {
        char *text;
        struct pgd_engine_stats st;
        pgd_engine_get_stats(e, &st);
        if (pgd_engine_metrics_text(e, &text, NULL) == PGD_OK)
            free(text);
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
    int fails = 0, stopped = 0;
    for (int i = 0; i < THREADS; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        if (ret || w[i].done != REQUESTS) {
            fprintf(stderr, "%s: worker %d: %s (%d of %d done)\n", name, i,
                    ret ? (const char *)ret : "incomplete", w[i].done, REQUESTS);
            fails++;
        }
        stopped += w[i].stopped;
    }
    struct pgd_engine_stats st;
    pgd_engine_get_stats(e, &st);
    if (strstr(name, "async") && st.num_steps_overlapped == 0) {
        fprintf(stderr, "%s: no step was submitted while another was in flight\n", name);
        fails++;
    }
    if (text && stopped == 0) {
        fprintf(stderr, "%s: no sample ended at a stop string\n", name);
        fails++;
    }
    /* Requests still in flight when the engine goes. */
    struct pgd_stream *left[4];
    int32_t prompt[3] = { 2, 3, 4 };
    struct pgd_request_params rp = pgd_request_default_params();
    rp.prompt_ids = prompt;
    rp.n_prompt_ids = 3;
    rp.sampling.max_tokens = 50;
    rp.sampling.n = 2;
    for (int i = 0; i < 4; i++)
        if (pgd_engine_submit(e, &rp, &left[i], err, sizeof err) != PGD_OK) {
            fprintf(stderr, "%s: submit: %s\n", name, err);
            return 1;
        }
    pgd_engine_destroy(e);
    for (int i = 0; i < 4; i++) {
        struct pgd_output o;
        int finals = 0;
        while (pgd_stream_next(left[i], &o, 10000) == PGD_OK)
            finals += o.finish_reason != PGD_FINISH_NONE;
        if (finals != 2) {
            fprintf(stderr, "%s: stream %d: %d finished samples of 2\n", name, i, finals);
            fails++;
        }
        pgd_stream_destroy(left[i]);
    }
    return fails;
}

int main(void)
{
    int f1 = run(fixture_tweak_stress, false, "priority"), f2 = run(tweak_fcfs, false, "fcfs");
    int f3 = run(fixture_tweak_stress, true, "priority, text");
    int f4 = run(tweak_async, true, "priority, text, async scheduling");
    int failing = (f1 != 0) + (f2 != 0) + (f3 != 0) + (f4 != 0);
    /* The summary line Criterion prints, which the CI report collects. */
    printf("[====] Synthesis: Tested: 4 | Passing: %d | Failing: %d | Crashing: 0 \n",
           4 - failing, failing);
    return failing ? 1 : 0;
}
