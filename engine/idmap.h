/* engine/idmap.h — a small open-addressing map from tunnel stream ids to connection
 * slots, one per tunnel. Keys are non-zero. */
#ifndef RINGLET_ENGINE_IDMAP_H
#define RINGLET_ENGINE_IDMAP_H

#include <stdbool.h>
#include <stdint.h>

struct idmap {
	uint32_t *keys; /* 0 empty, UINT32_MAX deleted */
	uint32_t *vals;
	uint32_t cap, used, tomb;
};

/* 0 or -ENOMEM. */
int idmap_put(struct idmap *m, uint32_t key, uint32_t val);
bool idmap_get(const struct idmap *m, uint32_t key, uint32_t *val);
bool idmap_del(struct idmap *m, uint32_t key);
void idmap_free(struct idmap *m);

#endif
