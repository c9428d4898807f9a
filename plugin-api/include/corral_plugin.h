/* corral native plugin ABI, versions 1 and 2.
 *
 * A native plugin is a shared library exporting corral_plugin_v2_entry
 * or corral_plugin_v1_entry (or both), each returning a pointer to a
 * static table. The worker takes v2 when it is there; it refuses a
 * library with neither symbol, or whose table's abi_version is not its
 * symbol's. This header is the normative form of the ABI; the Rust macro
 * export_plugin! produces both entries.
 *
 * The versions differ in call only. In v1 the plugin allocates its reply
 * (corral_owned) and the worker copies it, then releases it through the
 * table's free_owned. In v2 the plugin asks the worker for the reply's
 * bytes (corral_output.reserve) and writes them there: when the call came
 * on a host app's direct channel and the reply is large (64 KiB or more),
 * those bytes are shared memory the host app reads in place, so the reply
 * is written once and copied by nobody. Bytes the host returns are
 * released through the host's free_owned. Borrowed bytes (corral_bytes)
 * are valid only during the call; a large input may be shared memory the
 * host app wrote, which the plugin can only read.
 */
#ifndef CORRAL_PLUGIN_H
#define CORRAL_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CORRAL_ABI_VERSION 1
#define CORRAL_ABI_VERSION_2 2

/* call results */
#define CORRAL_CALL_OK 0
#define CORRAL_CALL_ERR_PLUGIN 1          /* out: UTF-8 message */
#define CORRAL_CALL_ERR_UNKNOWN_METHOD 2  /* out: UTF-8 message */
#define CORRAL_CALL_ERR_PANIC 3           /* out: UTF-8 message */

/* log levels */
#define CORRAL_LOG_ERROR 1
#define CORRAL_LOG_WARN 2
#define CORRAL_LOG_INFO 3
#define CORRAL_LOG_DEBUG 4
#define CORRAL_LOG_TRACE 5

/* host service results (corral_host.call): 0 = ok, else the error kind */
#define CORRAL_OK 0
#define CORRAL_ERR_PLUGIN 1
#define CORRAL_ERR_UNKNOWN_METHOD 2
#define CORRAL_ERR_UNKNOWN_PLUGIN 3
#define CORRAL_ERR_CRASHED 4
#define CORRAL_ERR_TIMEOUT 5
#define CORRAL_ERR_UNAVAILABLE 6
#define CORRAL_ERR_PROTOCOL 7
#define CORRAL_ERR_BAD_REQUEST 8
#define CORRAL_ERR_PERMISSION_DENIED 9   /* not in [permissions] host */
#define CORRAL_ERR_NOT_FOUND 10          /* kv_get / kv_delete: no such key */
#define CORRAL_ERR_LIMIT_EXCEEDED 11     /* storage quota */

/* host service ops (corral_host.call's op), each needing [permissions] host:
 *   "kv_get:KEY"          -> the value, or CORRAL_ERR_NOT_FOUND      ("kv")
 *   "kv_put:KEY"          input = value                              ("kv")
 *   "kv_delete:KEY"       ok, or CORRAL_ERR_NOT_FOUND                ("kv")
 *   "kv_list:PREFIX"      -> keys, sorted, one per line              ("kv")
 *   "kv_page:PREFIX"      input = page size (u32 LE), then the       ("kv")
 *                         start key (UTF-8, inclusive; empty = the
 *                         first) -> "NEXT\nKEY1\nKEY2": the key the next
 *                         page starts at (empty on the last), then the
 *                         page's keys, sorted by their UTF-8 bytes. Size 0
 *                         is CORRAL_ERR_BAD_REQUEST; over 10000 gets 10000
 *   "kv_batch"            input = writes, each 'P', key length (u32  ("kv")
 *                         LE), key, value length (u32 LE), value (a put)
 *                         or 'D', key length, key (a delete); applied in
 *                         order, all or none; deleting a missing key is ok
 *   "publish:TOPIC"       input = payload                            ("publish")
 *   "call:PLUGIN/METHOD"  input = the call's input -> its reply      ("call:PLUGIN")
 *   "config"              -> the plugin's settings, TOML text        (always allowed)
 * Publications on subscribed topics arrive as calls of method "@event:TOPIC". */

typedef struct { const uint8_t *ptr; size_t len; } corral_bytes;  /* borrowed */
typedef struct { uint8_t *ptr; size_t len; } corral_owned;         /* allocated by its producer */

typedef struct corral_host {           /* provided by the worker, valid until destroy */
  void *ctx;
  void (*log)(void *ctx, int32_t level, corral_bytes msg);
  uint64_t (*now_ms)(void *ctx);       /* milliseconds since the Unix epoch */
  /* host service call (ops above): CORRAL_OK = ok, out = reply; else a
     CORRAL_ERR_* kind, out = UTF-8 message; out is released with
     free_owned below. Valid during create, call and health. */
  int32_t (*call)(void *ctx, corral_bytes op, corral_bytes input, corral_owned *out);
  void (*free_owned)(void *ctx, corral_owned out);
} corral_host;

typedef struct {
  uint32_t abi_version;                                /* CORRAL_ABI_VERSION */
  void *(*create)(const corral_host *host);            /* NULL = init failed */
  /* CORRAL_CALL_OK: out holds the reply; otherwise out holds a UTF-8 message */
  int32_t (*call)(void *instance, corral_bytes method, corral_bytes input, corral_owned *out);
  int32_t (*health)(void *instance);                   /* 0 = healthy */
  void (*destroy)(void *instance);
  void (*free_owned)(corral_owned out);
} corral_plugin_v1;

const corral_plugin_v1 *corral_plugin_v1_entry(void);

/* v2: where call writes its reply (or, when it fails, its UTF-8 message).
   reserve returns len writable bytes that become the reply, replacing
   what an earlier reserve of the same call returned (which must not be
   used after); NULL when they cannot be had (over the frame limit). They
   hold old bytes, not zeroes: write all len of them. Valid during call. */
typedef struct corral_output {
  void *ctx;
  uint8_t *(*reserve)(void *ctx, size_t len);
} corral_output;

typedef struct {
  uint32_t abi_version;                                /* CORRAL_ABI_VERSION_2 */
  void *(*create)(const corral_host *host);            /* NULL = init failed */
  /* CORRAL_CALL_OK: the bytes last reserved from out are the reply;
     otherwise they are a UTF-8 message */
  int32_t (*call)(void *instance, corral_bytes method, corral_bytes input,
                  const corral_output *out);
  int32_t (*health)(void *instance);                   /* 0 = healthy */
  void (*destroy)(void *instance);
} corral_plugin_v2;

const corral_plugin_v2 *corral_plugin_v2_entry(void);

#ifdef __cplusplus
}
#endif

#endif /* CORRAL_PLUGIN_H */
