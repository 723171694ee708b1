/* The download progress on a terminal: one line per file in flight (bytes, size, percent)
 * and a total line (bytes, rate, ETA), redrawn in place with ANSI cursor moves. When stderr
 * is not a terminal the downloader prints plain log lines instead and never calls this. */
#include "config.h"
#include "runtime/hub/http.h"
#include <stdio.h>
#include <string.h>

const char *pgd__hub_human_bytes(long long n, char *buf, size_t len)
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    double v = (double)n;
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024;
        u++;
    }
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", v, units[u]);
    return buf;
}

/* A 20-cell bar for have of size (empty when the size is unknown). */
static void bar(char *out, long long have, long long size)
{
    int cells = size > 0 ? (int)(20 * (double)have / (double)size) : 0;
    if (cells > 20)
        cells = 20;
    for (int i = 0; i < 20; i++)
        out[i] = i < cells ? '#' : '.';
    out[20] = '\0';
}

void pgd__hub_progress_draw(const struct pgd__hub_progress_row *rows, size_t n,
                            long long done, long long total, size_t files_done,
                            size_t files_total, double rate, int *lines)
{
    /* Back to the first line of the previous frame; each line is cleared as it is written
     * and the leftover lines of a taller previous frame are cleared at the end. */
    if (*lines > 0)
        fprintf(stderr, "\033[%dA", *lines);
    int drawn = 0;
    char a[32], b[32], r[32], cells[21];
    for (size_t i = 0; i < n; i++, drawn++) {
        const char *name = rows[i].name;
        size_t len = strlen(name);
        bar(cells, rows[i].have, rows[i].size);
        fprintf(stderr, "\r\033[K  %-32.32s [%s] %s / %s\n", len > 32 ? name + len - 32 : name,
                cells, pgd__hub_human_bytes(rows[i].have, a, sizeof a),
                rows[i].size >= 0 ? pgd__hub_human_bytes(rows[i].size, b, sizeof b) : "?");
    }
    char eta[32] = "";
    if (rate > 1 && total > done)
        snprintf(eta, sizeof eta, ", ETA %.0f s", (double)(total - done) / rate);
    bar(cells, done, total);
    fprintf(stderr, "\r\033[K  total [%s] %s / %s, %s/s, %zu/%zu files%s\n", cells,
            pgd__hub_human_bytes(done, a, sizeof a), pgd__hub_human_bytes(total, b, sizeof b),
            pgd__hub_human_bytes((long long)rate, r, sizeof r), files_done, files_total, eta);
    drawn++;
    for (int i = drawn; i < *lines; i++)
        fprintf(stderr, "\r\033[K\n");
    if (*lines > drawn)
        fprintf(stderr, "\033[%dA", *lines - drawn);
    *lines = drawn;
    fflush(stderr);
}
