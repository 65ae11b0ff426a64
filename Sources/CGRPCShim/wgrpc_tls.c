// TLS material for servers and channels. See include/wgrpc_shim.h.
//
// gRPC core asks the certificate config fetcher for news on every new
// connection, under its own lock, so the fetcher must be cheap when nothing
// changed: it compares one generation number under our mutex. A reload is
// checked with OpenSSL before it is staged (gRPC core would only find a bad
// key when a client connects, and then keep the old certificates without a
// word to the operator).

#include "wgrpc_internal.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WGRPC_TLS_ASSERT(condition, what)                                     \
  do {                                                                        \
    if (!(condition)) {                                                       \
      fprintf(stderr, "wgrpc_tls: %s:%d: %s\n", __FILE__, __LINE__, (what));  \
      abort();                                                                \
    }                                                                         \
  } while (0)

typedef struct {
  char *cert_chain_pem;
  char *key_pem;
  char *client_ca_pem; // NULL: no client certificates
} tls_material;

struct wgrpc_tls {
  atomic_int refs;
  bool mutual; // fixed at creation: gRPC fixes the request type
  pthread_mutex_t mutex;
  tls_material current; // guarded by mutex
  // Bumped by every staged reload; the fetcher hands gRPC a new config when
  // it differs from the one it handed last.
  uint64_t generation;        // guarded by mutex
  uint64_t generation_served; // guarded by mutex
};

static void tls_set_error(char *error, size_t capacity, const char *format,
                          ...) {
  if (error == NULL || capacity == 0) {
    return;
  }
  va_list args;
  va_start(args, format);
  vsnprintf(error, capacity, format, args);
  va_end(args);
}

static char *duplicate(const char *text) {
  if (text == NULL) {
    return NULL;
  }
  char *copy = strdup(text);
  WGRPC_TLS_ASSERT(copy != NULL, "out of memory");
  return copy;
}

static void material_free(tls_material *material) {
  free(material->cert_chain_pem);
  if (material->key_pem != NULL) {
    // The key should not linger in freed memory.
    memset(material->key_pem, 0, strlen(material->key_pem));
    free(material->key_pem);
  }
  free(material->client_ca_pem);
  *material = (tls_material){0};
}

// Counts the certificates in a PEM text; -1 when one does not parse.
static int certificates_in(const char *pem, X509 **first) {
  BIO *bio = BIO_new_mem_buf(pem, -1);
  WGRPC_TLS_ASSERT(bio != NULL, "out of memory");
  int count = 0;
  for (;;) {
    X509 *certificate = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    if (certificate == NULL) {
      unsigned long reason = ERR_peek_last_error();
      // The end of the text reads as "no start line": only that is clean.
      bool at_end = ERR_GET_LIB(reason) == ERR_LIB_PEM &&
                    ERR_GET_REASON(reason) == PEM_R_NO_START_LINE;
      ERR_clear_error();
      if (!at_end) {
        count = -1;
      }
      break;
    }
    if (count == 0 && first != NULL) {
      *first = certificate;
    } else {
      X509_free(certificate);
    }
    count += 1;
  }
  BIO_free(bio);
  if (count < 0 && first != NULL && *first != NULL) {
    X509_free(*first);
    *first = NULL;
  }
  return count;
}

// Says what is wrong with the material, or returns true.
static bool material_check(const char *cert_chain_pem, const char *key_pem,
                           const char *client_ca_pem, char *error,
                           size_t error_capacity) {
  if (cert_chain_pem == NULL || key_pem == NULL) {
    tls_set_error(error, error_capacity, "a certificate and a key are needed");
    return false;
  }
  X509 *leaf = NULL;
  int chain = certificates_in(cert_chain_pem, &leaf);
  if (chain <= 0) {
    tls_set_error(error, error_capacity,
                  chain == 0 ? "the certificate file holds no certificate"
                             : "the certificate file does not parse as PEM");
    return false;
  }
  BIO *bio = BIO_new_mem_buf(key_pem, -1);
  WGRPC_TLS_ASSERT(bio != NULL, "out of memory");
  EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
  BIO_free(bio);
  ERR_clear_error();
  bool ok = true;
  if (key == NULL) {
    tls_set_error(error, error_capacity,
                  "the key file does not parse as a PEM private key");
    ok = false;
  } else if (X509_check_private_key(leaf, key) != 1) {
    tls_set_error(error, error_capacity,
                  "the key does not match the certificate");
    ok = false;
  }
  ERR_clear_error();
  EVP_PKEY_free(key);
  X509_free(leaf);
  if (ok && client_ca_pem != NULL) {
    int authorities = certificates_in(client_ca_pem, NULL);
    if (authorities <= 0) {
      tls_set_error(error, error_capacity,
                    authorities == 0
                        ? "the client CA file holds no certificate"
                        : "the client CA file does not parse as PEM");
      ok = false;
    }
  }
  return ok;
}

wgrpc_tls *wgrpc_tls_create(const char *cert_chain_pem, const char *key_pem,
                            const char *client_ca_pem, char *error,
                            size_t error_capacity) {
  tls_set_error(error, error_capacity, "");
  if (!material_check(cert_chain_pem, key_pem, client_ca_pem, error,
                      error_capacity)) {
    return NULL;
  }
  wgrpc_tls *tls = calloc(1, sizeof(*tls));
  WGRPC_TLS_ASSERT(tls != NULL, "out of memory");
  atomic_init(&tls->refs, 1);
  WGRPC_TLS_ASSERT(pthread_mutex_init(&tls->mutex, NULL) == 0,
                   "pthread_mutex_init failed");
  tls->mutual = client_ca_pem != NULL;
  tls->current = (tls_material){duplicate(cert_chain_pem), duplicate(key_pem),
                                duplicate(client_ca_pem)};
  // gRPC asks for the first config when the listener is added: generation 1
  // differs from generation_served 0, so it gets one.
  tls->generation = 1;
  return tls;
}

int wgrpc_tls_reload(wgrpc_tls *tls, const char *cert_chain_pem,
                     const char *key_pem, const char *client_ca_pem,
                     char *error, size_t error_capacity) {
  tls_set_error(error, error_capacity, "");
  if ((client_ca_pem != NULL) != tls->mutual) {
    tls_set_error(error, error_capacity,
                  tls->mutual ? "mutual TLS cannot be turned off by a reload"
                              : "mutual TLS cannot be turned on by a reload");
    return 0;
  }
  if (!material_check(cert_chain_pem, key_pem, client_ca_pem, error,
                      error_capacity)) {
    return 0;
  }
  tls_material next = {duplicate(cert_chain_pem), duplicate(key_pem),
                       duplicate(client_ca_pem)};
  WGRPC_TLS_ASSERT(pthread_mutex_lock(&tls->mutex) == 0, "lock failed");
  tls_material previous = tls->current;
  tls->current = next;
  tls->generation += 1;
  WGRPC_TLS_ASSERT(pthread_mutex_unlock(&tls->mutex) == 0, "unlock failed");
  material_free(&previous);
  return 1;
}

void wgrpc_tls_retain(wgrpc_tls *tls) {
  int previous = atomic_fetch_add(&tls->refs, 1);
  WGRPC_TLS_ASSERT(previous >= 1, "wgrpc_tls retained after its release");
}

void wgrpc_tls_release(wgrpc_tls *tls) {
  if (tls == NULL) {
    return;
  }
  int previous = atomic_fetch_sub(&tls->refs, 1);
  WGRPC_TLS_ASSERT(previous >= 1, "wgrpc_tls released too often");
  if (previous == 1) {
    material_free(&tls->current);
    pthread_mutex_destroy(&tls->mutex);
    free(tls);
  }
}

// Runs under gRPC core's lock on every new connection.
static grpc_ssl_certificate_config_reload_status
tls_fetch_config(void *user_data, grpc_ssl_server_certificate_config **config) {
  wgrpc_tls *tls = user_data;
  WGRPC_TLS_ASSERT(pthread_mutex_lock(&tls->mutex) == 0, "lock failed");
  if (tls->generation == tls->generation_served) {
    WGRPC_TLS_ASSERT(pthread_mutex_unlock(&tls->mutex) == 0, "unlock failed");
    return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
  }
  // gRPC copies the strings into the config.
  grpc_ssl_pem_key_cert_pair pair = {tls->current.key_pem,
                                     tls->current.cert_chain_pem};
  *config =
      grpc_ssl_server_certificate_config_create(tls->current.client_ca_pem,
                                                &pair, 1);
  tls->generation_served = tls->generation;
  WGRPC_TLS_ASSERT(pthread_mutex_unlock(&tls->mutex) == 0, "unlock failed");
  return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
}

grpc_server_credentials *wgrpc_tls_server_credentials(wgrpc_tls *tls) {
  grpc_ssl_server_credentials_options *options =
      grpc_ssl_server_credentials_create_options_using_config_fetcher(
          tls->mutual
              ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
              : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
          tls_fetch_config, tls);
  // Takes ownership of the options.
  return grpc_ssl_server_credentials_create_with_options(options);
}
