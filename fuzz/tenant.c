/* fuzz/tenant.c — libFuzzer driver for the tunnels file (engine/tenant.c).
 *
 * Arbitrary bytes go to tenants_parse. The environment is emptied but for one variable,
 * RINGLET_FUZZ_TOKEN, so `tokenEnv` can succeed (and clash); a `tokenFile` names no file
 * the driver made, so it fails to load unless it names a real small file (read, never
 * written). A refusal must say "path:..."; an acceptance must hold every promise of
 * tenant.h: valid unique names, unique tokens without white space, ports in range and
 * unique, bindings that do not clash, allowIPs and maxStreams in range, the hash of the
 * bytes, and an index in which every token finds its tunnel and nothing else. Leaks and
 * overruns are the sanitizers' to find.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "engine/tenant.h"

#define CHECK(x)                                                                               \
	do {                                                                                   \
		if (!(x)) {                                                                    \
			fprintf(stderr, "CHECK failed: %s (line %d)\n", #x, __LINE__);         \
			abort();                                                               \
		}                                                                              \
	} while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	clearenv();
	setenv("RINGLET_FUZZ_TOKEN", "fuzz-token-from-env", 1);
	return 0;
}

static void check_tenant(const struct tenant *t)
{
	size_t n = strlen(t->name);

	CHECK(n >= 1 && n <= TENANT_NAME_MAX);
	for (size_t i = 0; i < n; i++)
		CHECK((t->name[i] >= 'a' && t->name[i] <= 'z') ||
		      (t->name[i] >= '0' && t->name[i] <= '9') || t->name[i] == '-');
	CHECK(t->token);
	n = strlen(t->token);
	CHECK(n >= 1 && n <= TENANT_TOKEN_MAX);
	for (size_t i = 0; i < n; i++)
		CHECK((unsigned char)t->token[i] > 0x20 && t->token[i] != 0x7f);
	CHECK(t->line >= 1);
	CHECK(t->nports >= 1 && t->nports <= TUN_MAX_PORTS && t->ports);
	for (uint16_t i = 0; i < t->nports; i++) {
		const struct tenant_port *p = &t->ports[i];
		uint8_t bin[16];
		CHECK(p->port >= 1 && p->listen_port >= 1 && p->line >= t->line);
		CHECK(memchr(p->listen_addr, 0, sizeof(p->listen_addr)));
		CHECK(!p->listen_addr[0] || inet_pton(AF_INET, p->listen_addr, bin) == 1 ||
		      inet_pton(AF_INET6, p->listen_addr, bin) == 1);
		CHECK(tenant_port(t, p->port) == p);
		for (uint16_t j = 0; j < i; j++)
			CHECK(t->ports[j].port != p->port);
	}
	CHECK(t->n_allow <= TENANT_ALLOW_MAX);
	CHECK((t->n_allow == 0) == (t->allow == NULL));
	for (size_t i = 0; i < t->n_allow; i++)
		CHECK((t->allow[i].family == AF_INET && t->allow[i].bits <= 32) ||
		      (t->allow[i].family == AF_INET6 && t->allow[i].bits <= 128));
	CHECK(t->max_streams <= 1000000);
}

static void check_set(const struct tenant_set *s, const uint8_t *data, size_t size)
{
	uint8_t md[32];

	SHA256(data, size, md);
	CHECK(memcmp(md, s->sha256, 32) == 0);
	CHECK(s->n <= TENANT_MAX);
	CHECK(s->nslot >= 2 * s->n && s->nslot >= 2 && (s->nslot & (s->nslot - 1)) == 0);
	size_t full = 0;
	for (uint32_t j = 0; j < s->nslot; j++) {
		CHECK(s->slot[j] <= s->n);
		full += s->slot[j] != 0;
	}
	CHECK(full == s->n);

	for (size_t i = 0; i < s->n; i++) {
		const struct tenant *t = &s->t[i];
		check_tenant(t);
		for (size_t j = 0; j < i; j++) {
			const struct tenant *o = &s->t[j];
			CHECK(strcmp(o->name, t->name) != 0);
			CHECK(strcmp(o->token, t->token) != 0);
			CHECK(o->line <= t->line);
			for (uint16_t a = 0; a < t->nports; a++)
				for (uint16_t b = 0; b < o->nports; b++)
					CHECK(t->ports[a].listen_port !=
					              o->ports[b].listen_port ||
					      strcmp(t->ports[a].listen_addr,
					             o->ports[b].listen_addr) != 0);
		}
		size_t len = strlen(t->token);
		CHECK(tenants_find(s, t->token, len) == (int)i);
		/* A prefix, an extension and a changed byte find this tunnel never, and another
		 * one only if it is that tunnel's token exactly. */
		char *m = malloc(len + 2);
		CHECK(m);
		memcpy(m, t->token, len);
		m[len] = 'x';
		m[len + 1] = 0;
		for (int k = 0; k < 3; k++) {
			size_t mlen = k == 0 ? len - 1 : k == 1 ? len + 1 : len;
			if (k == 2)
				m[len - 1] ^= 1;
			int r = tenants_find(s, m, mlen);
			CHECK(r != (int)i);
			CHECK(r == -1 || (strlen(s->t[r].token) == mlen &&
			                  memcmp(s->t[r].token, m, mlen) == 0));
		}
		free(m);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tenant_set s;
	char err[512];

	if (tenants_parse((const char *)data, size, "fuzz.yaml", &s, err, sizeof(err)) == 0) {
		check_set(&s, data, size);
		/* The server's own check never crashes on what the parser accepted. */
		(void)tenants_check_bindings(&s, "fuzz.yaml", "10.0.0.1", "0.0.0.0", 8123, err,
		                             sizeof(err));
		CHECK(memchr(err, 0, sizeof(err)));
		tenants_free(&s);
		CHECK(s.t == NULL && s.slot == NULL && s.n == 0);
	} else {
		CHECK(memchr(err, 0, sizeof(err)));
		CHECK(strncmp(err, "fuzz.yaml:", 10) == 0);
	}
	return 0;
}
