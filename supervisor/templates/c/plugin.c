/* @NAME@: a corral plugin in C, native ABI v2 (see corral_plugin.h).
 *
 *   greet NAME -> "GREETING, NAME!"  (GREETING: the `greeting` setting)
 *
 * `make` builds lib@CRATE@.so, `make test` runs test.c against it. */
#include <stdlib.h>
#include <string.h>

#include "corral_plugin.h"

typedef struct {
  const corral_host *host;
  char greeting[64];
} instance;

/* The `greeting = "..."` line of the settings (TOML text), or "Hello". */
static void read_greeting(const corral_host *host, char *greeting, size_t size) {
  static const char key[] = "greeting = \"";
  corral_owned config = {NULL, 0};
  corral_bytes op = {(const uint8_t *)"config", 6}, none = {NULL, 0};
  strncpy(greeting, "Hello", size - 1);
  if (host->call(host->ctx, op, none, &config) == CORRAL_OK && config.ptr) {
    const char *text = (const char *)config.ptr, *end = text + config.len;
    const char *at = memmem(text, config.len, key, sizeof key - 1);
    if (at) {
      const char *start = at + sizeof key - 1;
      const char *quote = memchr(start, '"', (size_t)(end - start));
      size_t len = quote ? (size_t)(quote - start) : 0;
      if (quote && len < size) {
        memcpy(greeting, start, len);
        greeting[len] = '\0';
      }
    }
  }
  host->free_owned(host->ctx, config);
}

static void *create(const corral_host *host) {
  instance *self = calloc(1, sizeof *self);
  if (!self) return NULL;
  self->host = host;
  read_greeting(host, self->greeting, sizeof self->greeting);
  return self;
}

/* The reply (or message) a, b, c, written once where the worker says
   (shared memory the host app reads in place, when it is large);
   CORRAL_CALL_ERR_PLUGIN when the worker cannot hold it. */
static int32_t reply(int32_t code, const corral_output *out, const char *a, corral_bytes b,
                     const char *c) {
  size_t len = strlen(a) + b.len + strlen(c);
  uint8_t *bytes = out->reserve(out->ctx, len);
  if (!bytes) return CORRAL_CALL_ERR_PLUGIN;
  memcpy(bytes, a, strlen(a));
  if (b.len) memcpy(bytes + strlen(a), b.ptr, b.len);
  memcpy(bytes + strlen(a) + b.len, c, strlen(c));
  return code;
}

static int32_t call(void *self_, corral_bytes method, corral_bytes input,
                    const corral_output *out) {
  instance *self = self_;
  if (method.len == 5 && memcmp(method.ptr, "greet", 5) == 0) {
    char prefix[sizeof self->greeting + 2];
    strcpy(prefix, self->greeting);
    strcat(prefix, ", ");
    return reply(CORRAL_CALL_OK, out, prefix, input, "!");
  }
  return reply(CORRAL_CALL_ERR_UNKNOWN_METHOD, out, "unknown method `", method, "`");
}

static int32_t health(void *self) {
  (void)self;
  return 0;
}

static void destroy(void *self) { free(self); }

static const corral_plugin_v2 plugin = {
  CORRAL_ABI_VERSION_2, create, call, health, destroy,
};

const corral_plugin_v2 *corral_plugin_v2_entry(void) { return &plugin; }
