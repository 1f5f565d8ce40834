/* engine/idmap.c — see idmap.h. Linear probing with tombstones; grows at 50% load. */
#include <errno.h>
#include <stdlib.h>

#include "engine/idmap.h"

#define DELETED UINT32_MAX

static uint32_t slot_of(uint32_t key, uint32_t cap)
{
	return (key * 2654435761u) & (cap - 1);
}

static int grow(struct idmap *m)
{
	uint32_t ncap = m->cap ? m->cap * 2 : 16;
	if (m->used * 2 < m->cap)
		ncap = m->cap; /* mostly tombstones: rehash at the same size */
	uint32_t *nk = calloc(ncap, sizeof(*nk));
	uint32_t *nv = calloc(ncap, sizeof(*nv));
	if (!nk || !nv) {
		free(nk);
		free(nv);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < m->cap; i++) {
		uint32_t k = m->keys[i];
		if (k == 0 || k == DELETED)
			continue;
		uint32_t j = slot_of(k, ncap);
		while (nk[j])
			j = (j + 1) & (ncap - 1);
		nk[j] = k;
		nv[j] = m->vals[i];
	}
	free(m->keys);
	free(m->vals);
	m->keys = nk;
	m->vals = nv;
	m->cap = ncap;
	m->tomb = 0;
	return 0;
}

int idmap_put(struct idmap *m, uint32_t key, uint32_t val)
{
	if ((m->used + m->tomb + 1) * 2 > m->cap) {
		int r = grow(m);
		if (r)
			return r;
	}
	uint32_t j = slot_of(key, m->cap);
	int64_t first_tomb = -1;
	while (m->keys[j]) {
		if (m->keys[j] == key) {
			m->vals[j] = val;
			return 0;
		}
		if (m->keys[j] == DELETED && first_tomb < 0)
			first_tomb = j;
		j = (j + 1) & (m->cap - 1);
	}
	if (first_tomb >= 0) {
		j = (uint32_t)first_tomb;
		m->tomb--;
	}
	m->keys[j] = key;
	m->vals[j] = val;
	m->used++;
	return 0;
}

static int64_t find(const struct idmap *m, uint32_t key)
{
	if (!m->cap || key == 0 || key == DELETED)
		return -1;
	uint32_t j = slot_of(key, m->cap);
	while (m->keys[j]) {
		if (m->keys[j] == key)
			return j;
		j = (j + 1) & (m->cap - 1);
	}
	return -1;
}

bool idmap_get(const struct idmap *m, uint32_t key, uint32_t *val)
{
	int64_t j = find(m, key);
	if (j < 0)
		return false;
	*val = m->vals[j];
	return true;
}

bool idmap_del(struct idmap *m, uint32_t key)
{
	int64_t j = find(m, key);
	if (j < 0)
		return false;
	m->keys[j] = DELETED;
	m->used--;
	m->tomb++;
	return true;
}

void idmap_free(struct idmap *m)
{
	free(m->keys);
	free(m->vals);
	m->keys = m->vals = NULL;
	m->cap = m->used = m->tomb = 0;
}
