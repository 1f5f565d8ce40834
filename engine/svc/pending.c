/* engine/svc/pending.c — fair shares of the control port's pending connections (see
 * pending.h). Every operation is a scan of at most PEND_MAX entries. */
#include <netinet/in.h>
#include <string.h>

#include "engine/svc/pending.h"

void pend_key_from(struct pend_key *k, const struct sockaddr *sa)
{
	memset(k, 0, sizeof(*k));
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
		k->b[10] = k->b[11] = 0xff;
		memcpy(k->b + 12, &a->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
		/* An IPv4 peer of a dual-stack socket is its IPv4 address; an IPv6 peer is
		 * its /64 (a host gets a whole /64, so its addresses are one source). */
		bool v4 = IN6_IS_ADDR_V4MAPPED(&a->sin6_addr);
		memcpy(k->b, &a->sin6_addr, v4 ? 16 : 8);
	}
}

static int src_find(const struct pending *p, const struct pend_key *k)
{
	for (int i = 0; i < PEND_MAX; i++)
		if (p->src[i].n && memcmp(&p->src[i].key, k, sizeof(*k)) == 0)
			return i;
	return -1;
}

uint32_t pend_count(const struct pending *p, const struct pend_key *k)
{
	int i = src_find(p, k);
	return i < 0 ? 0 : p->src[i].n;
}

/* The oldest node whose source is entry si. */
static struct pend_node *oldest_of(const struct pending *p, int si)
{
	for (struct pend_node *n = p->oldest; n; n = n->next)
		if (n->src == si)
			return n;
	return NULL;
}

struct pend_node *pend_victim(const struct pending *p, const struct pend_key *k,
                              bool short_of_other)
{
	int si = src_find(p, k);
	if (si >= 0 && p->src[si].n >= PEND_PER_SOURCE)
		return oldest_of(p, si);
	if (p->n < PEND_MAX && !short_of_other)
		return NULL;
	uint32_t most = 0;
	for (int i = 0; i < PEND_MAX; i++)
		if (p->src[i].n > most)
			most = p->src[i].n;
	/* Among the busiest sources, the one whose connection is the oldest. */
	for (struct pend_node *n = p->oldest; n; n = n->next)
		if (p->src[n->src].n == most)
			return n;
	return NULL;
}

bool pend_add(struct pending *p, struct pend_node *node, const struct pend_key *k)
{
	if (p->n >= PEND_MAX || node->linked)
		return false;
	int si = src_find(p, k);
	if (si >= 0 && p->src[si].n >= PEND_PER_SOURCE)
		return false;
	/* A free entry always exists: each used one has a node, and fewer than PEND_MAX
	 * nodes are linked. */
	for (int i = 0; si < 0 && i < PEND_MAX; i++)
		if (!p->src[i].n) {
			si = i;
			p->src[i].key = *k;
		}
	p->src[si].n++;
	node->src = (uint16_t)si;
	node->prev = p->newest;
	node->next = NULL;
	if (p->newest)
		p->newest->next = node;
	else
		p->oldest = node;
	p->newest = node;
	node->linked = true;
	p->n++;
	return true;
}

void pend_remove(struct pending *p, struct pend_node *node)
{
	if (!node->linked)
		return;
	if (node->prev)
		node->prev->next = node->next;
	else
		p->oldest = node->next;
	if (node->next)
		node->next->prev = node->prev;
	else
		p->newest = node->prev;
	node->prev = node->next = NULL;
	node->linked = false;
	p->src[node->src].n--;
	p->n--;
}
