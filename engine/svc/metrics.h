/* engine/svc/metrics.h — render /metrics and /status. Each returns the body's length and a
 * malloc'd body in *out (NULL when out of memory; the caller frees it). */
#ifndef RINGLET_ENGINE_METRICS_H
#define RINGLET_ENGINE_METRICS_H

#include <stddef.h>

struct engine;

size_t metrics_render(struct engine *e, char **out);
size_t status_render(struct engine *e, char **out);

#endif
