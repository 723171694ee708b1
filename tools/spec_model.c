/* The draft model named in --speculative-config: a Hugging Face hub id or a catalog short
 * name becomes its snapshot directory (fetched when missing), as the target's --model does,
 * so that vLLM's '{"model": "ORG/NAME", ...}' works; a directory is left as it is. */
#include "tools/commands.h"
#include "runtime/hub/hub.h"
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pgd_tool_resolve_spec_model(const char **spec_json, char *buf, size_t buflen)
{
    if (!*spec_json || !**spec_json)
        return 0;
    json_t *o = json_loads(*spec_json, 0, NULL);
    const char *model = json_string_value(json_object_get(o, "model"));
    int rc = 0;
    if (model && *model && strcmp(model, "[ngram]")) {
        char dir[PATH_MAX], err[2048];
        if (pgd__hub_resolve_model(model, NULL, NULL, dir, sizeof dir, err, sizeof err)) {
            fprintf(stderr, "pagoda: --speculative-config: %s\n", err);
            rc = 1;
        } else if (strcmp(dir, model)) {
            json_object_set_new(o, "model", json_string(dir));
            char *text = json_dumps(o, JSON_COMPACT);
            if (!text || strlen(text) >= buflen) {
                fprintf(stderr, "pagoda: --speculative-config: the draft's path is too long\n");
                rc = 1;
            } else {
                snprintf(buf, buflen, "%s", text);
                *spec_json = buf;
            }
            free(text);
        }
    }
    json_decref(o);
    return rc;
}
