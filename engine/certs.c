/* engine/certs.c — see certs.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/certs.h"
#include "engine/httpc.h"
#include "engine/log.h"

#define CA_DAYS 3650
#define CERT_DAYS 365
#define RENEW_DAYS 30
#define CA_MAX_BODY (64 * 1024) /* a CA answer larger than this is refused */

char *certs_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	while (buf) {
		size_t k = fread(buf + n, 1, cap - n - 1, f);
		n += k;
		if (k == 0)
			break;
		if (n + 1 == cap) {
			char *nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
	}
	fclose(f);
	if (buf) {
		buf[n] = 0;
		if (len)
			*len = n;
	}
	return buf;
}

static EVP_PKEY *new_key(void)
{
	EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
	EVP_PKEY *pk = EVP_PKEY_new();
	if (!ec || !pk || !EC_KEY_generate_key(ec) || !EVP_PKEY_assign_EC_KEY(pk, ec)) {
		EC_KEY_free(ec);
		EVP_PKEY_free(pk);
		return NULL;
	}
	return pk;
}

static bool add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return false;
	bool ok = X509_add_ext(cert, ext, -1) == 1;
	X509_EXTENSION_free(ext);
	return ok;
}

/* A certificate for key, signed by (issuer, issuer_key) or self-signed when issuer is
 * NULL. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key,
                       int days, const char *san)
{
	X509 *x = X509_new();
	BIGNUM *bn = BN_new();
	ASN1_INTEGER *serial = NULL;
	bool ok = x && bn && X509_set_version(x, X509_VERSION_3) && BN_rand(bn, 120, -1, 0) &&
	          (serial = BN_to_ASN1_INTEGER(bn, NULL)) && X509_set_serialNumber(x, serial) &&
	          X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
	          X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400) &&
	          X509_set_pubkey(x, key);
	X509_NAME *name = ok ? X509_get_subject_name(x) : NULL;
	ok = ok && name &&
	     X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const uint8_t *)"ringlet", -1,
	                                -1, 0) &&
	     X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const uint8_t *)cn, -1, -1,
	                                0);
	ok = ok && X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
	X509 *iss = issuer ? issuer : x;
	if (ok && !issuer) {
		ok = add_ext(x, iss, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") &&
		     add_ext(x, iss, NID_key_usage, "critical,keyCertSign,cRLSign") &&
		     add_ext(x, iss, NID_subject_key_identifier, "hash");
	} else if (ok) {
		ok = add_ext(x, iss, NID_basic_constraints, "critical,CA:FALSE") &&
		     add_ext(x, iss, NID_key_usage, "critical,digitalSignature") &&
		     add_ext(x, iss, NID_ext_key_usage, "serverAuth") &&
		     add_ext(x, iss, NID_authority_key_identifier, "keyid") &&
		     (!san || add_ext(x, iss, NID_subject_alt_name, san));
	}
	ok = ok && X509_sign(x, issuer ? issuer_key : key, EVP_sha256());
	ASN1_INTEGER_free(serial);
	BN_free(bn);
	if (!ok) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static bool write_pem(const char *path, mode_t mode, X509 *cert, EVP_PKEY *key)
{
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd == -1)
		return false;
	fchmod(fd, mode);
	FILE *f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return false;
	}
	bool ok = cert ? PEM_write_X509(f, cert) == 1
	               : PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1;
	ok = fclose(f) == 0 && ok;
	return ok && rename(tmp, path) == 0;
}

static X509 *load_cert(const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return NULL;
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	return x;
}

static EVP_PKEY *load_key(const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return NULL;
	EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	return k;
}

static bool is_ip(const char *s)
{
	uint8_t b[16];
	return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

static bool valid_for(X509 *cert, int days)
{
	time_t when = time(NULL) + (time_t)days * 86400;
	return X509_cmp_time(X509_get0_notAfter(cert), &when) > 0;
}

/* The SANs to use: --auto-tls-san, or localhost and the loopback addresses. */
static size_t sans_of(const struct cfg *c, const char **out, size_t cap)
{
	static const char *const dflt[] = {"localhost", "127.0.0.1", "::1"};
	size_t n = 0;
	if (c->n_tls_san) {
		for (size_t i = 0; i < c->n_tls_san && n < cap; i++)
			out[n++] = c->tls_san[i];
	} else {
		for (size_t i = 0; i < 3; i++)
			out[n++] = dflt[i];
	}
	return n;
}

static bool covers(X509 *cert, const char **sans, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int ok = is_ip(sans[i])
		                 ? X509_check_ip_asc(cert, sans[i], 0)
		                 : X509_check_host(cert, sans[i], strlen(sans[i]), 0, NULL);
		if (ok != 1)
			return false;
	}
	return true;
}

int certs_auto(const struct cfg *c, const char *dir, char **ca_pem, char *err, size_t errlen)
{
	char ca_crt[4096], ca_key[4096], srv_crt[4096], srv_key[4096];
	snprintf(ca_crt, sizeof(ca_crt), "%s/ca.crt", dir);
	snprintf(ca_key, sizeof(ca_key), "%s/ca.key", dir);
	snprintf(srv_crt, sizeof(srv_crt), "%s/server.crt", dir);
	snprintf(srv_key, sizeof(srv_key), "%s/server.key", dir);
	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	const char *sans[64];
	size_t nsans = sans_of(c, sans, 64);
	if (!c->n_tls_san)
		log_warn("no --auto-tls-san given: the certificate names localhost, 127.0.0.1 "
		         "and ::1 only",
		         NULL);

	int ret = -1;
	X509 *ca = load_cert(ca_crt), *srv = load_cert(srv_crt);
	EVP_PKEY *cak = load_key(ca_key), *sk = load_key(srv_key);
	ERR_clear_error();
	bool ca_ok =
	        ca && cak && X509_check_private_key(ca, cak) == 1 && valid_for(ca, RENEW_DAYS);
	EVP_PKEY *ca_pub = ca_ok ? X509_get_pubkey(ca) : NULL;
	bool srv_ok = ca_pub && srv && sk && X509_check_private_key(srv, sk) == 1 &&
	              X509_verify(srv, ca_pub) == 1 && valid_for(srv, RENEW_DAYS) &&
	              covers(srv, sans, nsans);
	EVP_PKEY_free(ca_pub);
	ERR_clear_error();
	if (!ca_ok) {
		X509_free(ca);
		EVP_PKEY_free(cak);
		cak = new_key();
		ca = cak ? make_cert(cak, "ringlet auto-TLS CA", NULL, NULL, CA_DAYS, NULL)
		         : NULL;
		if (!ca || !write_pem(ca_key, 0600, NULL, cak) ||
		    !write_pem(ca_crt, 0644, ca, NULL)) {
			snprintf(err, errlen, "cannot create the CA in %s: %s", dir,
			         strerror(errno ? errno : EIO));
			goto out;
		}
		log_info("auto-TLS: generated a new CA", "path=%s", log_q(ca_crt));
	}
	if (!srv_ok) {
		char san[2048] = "";
		size_t pl = 0;
		for (size_t i = 0; i < nsans; i++)
			pl += (size_t)snprintf(san + pl, sizeof(san) - pl, "%s%s:%s",
			                       i ? "," : "", is_ip(sans[i]) ? "IP" : "DNS",
			                       sans[i]);
		X509_free(srv);
		EVP_PKEY_free(sk);
		sk = new_key();
		srv = sk ? make_cert(sk, sans[0], ca, cak, CERT_DAYS, san) : NULL;
		if (!srv || !write_pem(srv_key, 0600, NULL, sk) ||
		    !write_pem(srv_crt, 0644, srv, NULL)) {
			snprintf(err, errlen, "cannot create the server certificate in %s: %s",
			         dir, strerror(errno ? errno : EIO));
			goto out;
		}
		log_info("auto-TLS: generated a server certificate", "path=%s sans=%s",
		         log_q(srv_crt), log_q(san));
	} else {
		log_info("auto-TLS: reusing the certificates", "path=%s", log_q(dir));
	}
	*ca_pem = certs_read_file(ca_crt, NULL);
	if (!*ca_pem) {
		snprintf(err, errlen, "cannot read %s: %s", ca_crt, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	X509_free(ca);
	X509_free(srv);
	EVP_PKEY_free(cak);
	EVP_PKEY_free(sk);
	ERR_clear_error();
	return ret;
}

int certs_fetch_ca(const char *host, unsigned port, int timeout_ms, char **pem, char *err,
                   size_t errlen)
{
	const struct httpc_request req = {
	        .host = host,
	        .port = (uint16_t)port,
	        .path = "/.well-known/ca.crt",
	        .transport = HTTPC_TLS_UNVERIFIED, /* trust on first use: see certs.h */
	        .timeout_ms = timeout_ms,
	        .max_body = CA_MAX_BODY,
	};
	struct httpc_response resp;
	int ret = -1;
	if (httpc_get(&req, &resp, err, errlen))
		return -1;
	if (resp.status != 200) {
		snprintf(err, errlen,
		         "GET /.well-known/ca.crt answered %d (is the server running "
		         "with --auto-tls?)",
		         resp.status);
	} else if (!strstr(resp.body, "-----BEGIN CERTIFICATE-----")) {
		snprintf(err, errlen, "/.well-known/ca.crt is not a PEM certificate");
	} else {
		*pem = resp.body;
		resp.body = NULL;
		ret = 0;
	}
	httpc_response_free(&resp);
	return ret;
}
