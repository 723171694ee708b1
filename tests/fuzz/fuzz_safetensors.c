/* Fuzz target: the safetensors reader on an in-memory file (pgd__st_file_parse, what
 * pgd__st_file_open runs on the map).
 *
 * Checked: a refusal has a message naming the file; an accepted file's tensors each lie
 * inside the buffer, after the header, with nbytes = numel x dtype size, in offset order
 * without overlap; and a CPU view of each (when the rank fits) has the same bytes. */
#include "tests/fuzz/fuzz.h"
#include "runtime/model/safetensors.h"
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pgd__st_file *f = NULL;
    char err[512] = "";
    enum pgd_status st = pgd__st_file_parse("fuzz.safetensors", data, size, &f, err, sizeof err);
    if (st != PGD_OK) {
        FUZZ_CHECK(!f && strstr(err, "fuzz.safetensors"), "refusal without the file's name: %s",
                   err);
        return 0;
    }
    const uint8_t *end = data + size, *prev_end = data + f->data_start;
    for (size_t i = 0; i < f->n_tensors; i++) {
        const struct pgd__st_tensor *t = &f->tensors[i];
        const uint8_t *p = t->data;
        FUZZ_CHECK(t->nbytes == 0 || (p >= data + f->data_start && p + t->nbytes <= end),
                   "tensor '%s' outside the file", t->name);
        FUZZ_CHECK(t->nbytes == 0 || p >= prev_end, "tensor '%s' overlaps the one before",
                   t->name);
        if (t->nbytes)
            prev_end = p + t->nbytes;
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++)
            numel *= (uint64_t)t->shape[d];
        FUZZ_CHECK(numel * pgd_dtype_size(t->dtype) == t->nbytes, "tensor '%s': %zu bytes",
                   t->name, t->nbytes);
        struct pgd_tensor v;
        if (pgd__st_tensor_view(t, &v, err, sizeof err) == PGD_OK)
            FUZZ_CHECK(v.data == t->data, "the view of '%s' moved", t->name);
    }
    pgd__st_file_close(f);
    return 0;
}
