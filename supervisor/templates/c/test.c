/* Loads lib@CRATE@.so as corral's worker would and calls it, with a host
 * whose settings are `greeting = "Hi"`: `make test`. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corral_plugin.h"

static void host_log(void *ctx, int32_t level, corral_bytes msg) {
  (void)ctx;
  fprintf(stderr, "[%d] %.*s\n", level, (int)msg.len, (const char *)msg.ptr);
}

static uint64_t host_now_ms(void *ctx) {
  (void)ctx;
  return 0;
}

static int32_t host_call(void *ctx, corral_bytes op, corral_bytes input, corral_owned *out) {
  static const char config[] = "greeting = \"Hi\"\n";
  (void)ctx;
  (void)input;
  if (op.len != 6 || memcmp(op.ptr, "config", 6) != 0) return CORRAL_ERR_UNAVAILABLE;
  out->ptr = malloc(sizeof config - 1);
  memcpy(out->ptr, config, sizeof config - 1);
  out->len = sizeof config - 1;
  return CORRAL_OK;
}

static void host_free_owned(void *ctx, corral_owned out) {
  (void)ctx;
  free(out.ptr);
}

/* The worker's side of corral_output: a buffer it owns. */
typedef struct {
  uint8_t bytes[4096];
  size_t len;
} reply_buffer;

static uint8_t *reserve(void *ctx, size_t len) {
  reply_buffer *reply = ctx;
  if (len > sizeof reply->bytes) return NULL;
  reply->len = len;
  return reply->bytes;
}

static int expect(const corral_plugin_v2 *plugin, void *instance, const char *method,
                  const char *input, int32_t code, const char *expected) {
  corral_bytes m = {(const uint8_t *)method, strlen(method)};
  corral_bytes in = {(const uint8_t *)input, strlen(input)};
  reply_buffer reply = {{0}, 0};
  corral_output out = {&reply, reserve};
  int32_t got = plugin->call(instance, m, in, &out);
  int ok = got == code && reply.len == strlen(expected) &&
           memcmp(reply.bytes, expected, reply.len) == 0;
  if (!ok)
    fprintf(stderr, "%s(%s): got %d \"%.*s\", expected %d \"%s\"\n", method, input, got,
            (int)reply.len, (const char *)reply.bytes, code, expected);
  return ok;
}

int main(void) {
  void *library = dlopen("./lib@CRATE@.so", RTLD_NOW);
  if (!library) {
    fprintf(stderr, "%s\n", dlerror());
    return 1;
  }
  const corral_plugin_v2 *(*entry)(void) =
      (const corral_plugin_v2 *(*)(void))dlsym(library, "corral_plugin_v2_entry");
  if (!entry) {
    fprintf(stderr, "no corral_plugin_v2_entry\n");
    return 1;
  }
  const corral_plugin_v2 *plugin = entry();
  corral_host host = {NULL, host_log, host_now_ms, host_call, host_free_owned};
  void *instance = plugin->create(&host);
  int ok = plugin->abi_version == CORRAL_ABI_VERSION_2 && instance &&
           expect(plugin, instance, "greet", "corral", CORRAL_CALL_OK, "Hi, corral!") &&
           expect(plugin, instance, "nope", "", CORRAL_CALL_ERR_UNKNOWN_METHOD, "unknown method `nope`") &&
           plugin->health(instance) == 0;
  if (instance) plugin->destroy(instance);
  puts(ok ? "test passed" : "test FAILED");
  return ok ? 0 : 1;
}
