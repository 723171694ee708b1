/* Internal: struct pgd_model_ctx, what a plugin's load sees (a view of the model being
 * built). */
#ifndef PGD_RUNTIME_MODEL_CTX_H
#define PGD_RUNTIME_MODEL_CTX_H

#include "runtime/model/model.h"

struct pgd_model_ctx {
    struct pgd__model *m;              /* the model being loaded */
};

#endif
